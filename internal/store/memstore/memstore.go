// Package memstore is the embedded, in-process replacement of Redis for
// standalone mode (no JAMBONES_REDIS_HOST).
//
// It holds the same data model as the Redis deployment — the same keys
// (`user:<aor>` JSON, `active-user`, `active-user-realm:<realm>`), the same
// kinds (strings, sets, sorted sets, hashes) and the same per-key expiry —
// so the registrar's semantics (TTL'd bindings, sorted-set pruning by score)
// are identical, and the other cluster keys (membership sets, bans, the
// regbot token with SET NX + expiry, blacklists with TTL) map onto the
// store.KV operations and the commands of Tx, which runs a sequence of them
// atomically as a Lua script does in Redis. It is the one in-process
// key-value design of the service: membership and bans of standalone mode
// live in memstores too (kept in memory only, bans bounded by MaxKeys).
//
// With a Path, the whole keyspace is persisted in one JSON file, written atomically
// (temporary file + rename) periodically when something changed and on
// Close, so that a restart does not log every phone out. Expired keys are
// dropped when the file is loaded.
package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// ErrWrongType is returned when a key holds another kind of value.
var ErrWrongType = errors.New("memstore: operation against a key holding the wrong kind of value")

// Options configure a Store.
type Options struct {
	// Path of the state file; empty keeps everything in memory only.
	Path string
	// SaveEvery is how often changes are written (default 5 s).
	SaveEvery time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// MaxKeys bounds the keys held (0: unbounded): creating one more fails
	// with store.ErrFull. For state fed by outsiders (bans of sources).
	MaxKeys int
	Log     *slog.Logger
}

// Store is the embedded store. Its methods are safe for concurrent use.
type Store struct {
	opts Options

	mu    sync.Mutex
	ks    *keyspace
	dirty uint64 // changes since start; compared with saved

	saveMu sync.Mutex // serialises file writes
	saved  uint64     // value of dirty at the last successful save
}

// Open loads the state file (if it exists) and returns the store. A file
// that cannot be read or parsed is an error naming it: silently starting
// empty would log every phone out.
func Open(opts Options) (*Store, error) {
	if opts.SaveEvery <= 0 {
		opts.SaveEvery = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Store{opts: opts, ks: newKeyspace(opts.MaxKeys)}
	if opts.Path == "" {
		return s, nil
	}
	loaded, dropped, err := load(opts.Path, s.nowMs(), opts.MaxKeys)
	if err != nil {
		return nil, err
	}
	if loaded != nil {
		s.ks = loaded
		opts.Log.Info("memstore: state loaded", "file", opts.Path, "keys", len(loaded.keys), "expired_dropped", dropped)
	}
	return s, nil
}

// Path returns the state file ("" when in memory only).
func (s *Store) Path() string { return s.opts.Path }

// Run saves changes every SaveEvery and sweeps expired keys until ctx ends.
// It does not save on return: Close does, after the SIP front has stopped.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			if n := s.ks.sweep(s.nowMs()); n > 0 {
				s.dirty++
			}
			s.mu.Unlock()
			if err := s.Save(); err != nil {
				s.opts.Log.Error("memstore: saving state failed", "file", s.opts.Path, "err", err)
			}
		}
	}
}

// Close writes the state file a last time.
func (s *Store) Close() error { return s.Save() }

func (s *Store) nowMs() int64 { return s.opts.Now().UnixMilli() }

// --- registrar.Store ---

var _ store.Registrations = (*Store)(nil)

// Binding implements registrar.Store.
func (s *Store) Binding(ctx context.Context, aor string) (*registrar.Binding, error) {
	raw, ok, err := s.Get(ctx, store.UserKey(aor))
	if err != nil || !ok {
		return nil, err
	}
	b, err := store.DecodeBinding(raw)
	if err != nil {
		return nil, fmt.Errorf("memstore: %s holds invalid JSON: %w", store.UserKey(aor), err)
	}
	return &b, nil
}

// Bind implements registrar.Store: the JSON value with a TTL, and the
// member in active-user and the realm's index scored by expiryTime.
func (s *Store) Bind(_ context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	payload := store.EncodeBinding(&b)
	key := store.UserKey(aor)
	return s.Update(func(tx *Tx) error {
		if err := tx.Set(key, string(payload), ttl); err != nil {
			return err
		}
		for _, set := range []string{store.ActiveUsers, store.RealmKey(store.RealmOf(aor))} {
			e, err := tx.of("zadd", set, kindZSet, true)
			if err != nil {
				return err
			}
			e.ZSet[key] = float64(b.ExpiryTime)
			// A realm's index expires with its longest-lived member (only
			// CountRealm prunes it); active-user is pruned periodically.
			if set != store.ActiveUsers && e.ExpireAt < b.ExpiryTime {
				e.ExpireAt = b.ExpiryTime
			}
		}
		return nil
	})
}

// Unbind implements registrar.Store.
func (s *Store) Unbind(_ context.Context, aor string) error {
	key := store.UserKey(aor)
	return s.Update(func(tx *Tx) error {
		tx.Del(key)
		for _, set := range []string{store.ActiveUsers, store.RealmKey(store.RealmOf(aor))} {
			if e, err := tx.of("zrem", set, kindZSet, false); err == nil && e != nil {
				delete(e.ZSet, key)
				tx.drop(set, e)
			}
		}
		tx.changed = true
		return nil
	})
}

// CountRealm implements registrar.Store: expired members are pruned first.
func (s *Store) CountRealm(_ context.Context, realm string) (int, error) {
	return s.pruneAndCount(store.RealmKey(realm))
}

// Count prunes expired members of active-user and returns how many remain.
func (s *Store) Count(_ context.Context) (int, error) { return s.pruneAndCount(store.ActiveUsers) }

func (s *Store) pruneAndCount(set string) (int, error) {
	return do(s, func(tx *Tx) (int, error) {
		e, err := tx.of("count", set, kindZSet, false)
		if err != nil || e == nil {
			return 0, err
		}
		if zremRangeByScore(e, float64(tx.now)) > 0 {
			tx.drop(set, e)
		}
		return len(e.ZSet), nil
	})
}

// List returns the unexpired bindings, optionally of one realm.
func (s *Store) List(_ context.Context, realm string) (map[string]registrar.Binding, error) {
	set := store.ActiveUsers
	if realm != "" {
		set = store.RealmKey(realm)
	}
	return do(s, func(tx *Tx) (map[string]registrar.Binding, error) {
		e, err := tx.of("list", set, kindZSet, false)
		if err != nil {
			return nil, err
		}
		out := map[string]registrar.Binding{}
		for _, key := range zrangeByScore(e, float64(tx.now)) {
			v, ok, err := tx.Get(key)
			if err != nil || !ok {
				continue
			}
			b, err := store.DecodeBinding(v)
			if err != nil {
				return nil, fmt.Errorf("memstore: %s holds invalid JSON: %w", key, err)
			}
			out[store.AoROf(key)] = b
		}
		return out, nil
	})
}

// --- persistence ---

const fileFormat = "sbc-sip-sidecar-state"

type stateFile struct {
	Format  string            `json:"format"`
	Version int               `json:"version"`
	SavedAt int64             `json:"savedAt"` // ms epoch
	Keys    map[string]*entry `json:"keys"`
}

// Save writes the state file if anything changed since the last save. The
// file is replaced atomically: a crash mid-write leaves the previous one.
func (s *Store) Save() error {
	if s.opts.Path == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()

	s.mu.Lock()
	version := s.dirty
	if version == s.saved {
		s.mu.Unlock()
		return nil
	}
	payload, err := json.Marshal(stateFile{Format: fileFormat, Version: 1, SavedAt: s.nowMs(), Keys: s.ks.keys})
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("memstore: encoding state: %w", err)
	}
	if err := writeAtomic(s.opts.Path, payload); err != nil {
		return err
	}
	s.saved = version
	return nil
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("memstore: writing %s: %w", path, err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// load reads a state file; a missing file is not an error (nil keyspace).
func load(path string, nowMs int64, maxKeys int) (*keyspace, int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("memstore: reading state file %s: %w", path, err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, 0, fmt.Errorf("memstore: state file %s is corrupt (move it away to start empty): %w", path, err)
	}
	if f.Format != fileFormat || f.Version != 1 {
		return nil, 0, fmt.Errorf("memstore: %s is not a version 1 %s file", path, fileFormat)
	}
	ks := newKeyspace(maxKeys)
	for k, e := range f.Keys {
		if e == nil || !validKind(e) {
			return nil, 0, fmt.Errorf("memstore: state file %s: key %q has an invalid value", path, k)
		}
		ks.keys[k] = e
	}
	return ks, ks.sweep(nowMs), nil
}

func validKind(e *entry) bool {
	switch e.Kind {
	case kindString:
		return true
	case kindSet:
		if e.Set == nil {
			e.Set = map[string]bool{}
		}
		return true
	case kindZSet:
		if e.ZSet == nil {
			e.ZSet = map[string]float64{}
		}
		return true
	case kindHash:
		if e.Hash == nil {
			e.Hash = map[string]string{}
		}
		return true
	}
	return false
}
