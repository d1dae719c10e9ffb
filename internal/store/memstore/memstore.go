// Package memstore is the embedded, in-process replacement of Redis for
// standalone mode (no JAMBONES_REDIS_HOST).
//
// It holds the same data model as the Redis deployment — the same keys
// (`user:<aor>` JSON, `active-user`, `active-user-realm:<realm>`), the same
// kinds (strings, sets, sorted sets, hashes) and the same per-key expiry —
// so the registrar's semantics (TTL'd bindings, sorted-set pruning by score)
// are identical, and the other cluster keys (membership sets, the regbot
// token with SET NX + expiry, blacklists with TTL) map onto the generic
// primitives (Set, SetNX, SAdd, HSet ...) without a new storage format.
//
// The whole keyspace is persisted in one JSON file, written atomically
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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Keys shared with the Redis store (docs/contract.md#redis).
const ActiveUsers = "active-user"

// UserKey returns the key of an AoR's binding.
func UserKey(aor string) string { return "user:" + aor }

// RealmKey returns the key of a realm's index.
func RealmKey(realm string) string { return "active-user-realm:" + strings.ToLower(realm) }

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
	Log *slog.Logger
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
	s := &Store{opts: opts, ks: newKeyspace()}
	if opts.Path == "" {
		return s, nil
	}
	loaded, dropped, err := load(opts.Path, s.nowMs())
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

// Binding implements registrar.Store.
func (s *Store) Binding(ctx context.Context, aor string) (*registrar.Binding, error) {
	raw, ok, err := s.Get(ctx, UserKey(aor))
	if err != nil || !ok {
		return nil, err
	}
	var b registrar.Binding
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		return nil, fmt.Errorf("memstore: %s holds invalid JSON: %w", UserKey(aor), err)
	}
	return &b, nil
}

// Bind implements registrar.Store: the JSON value with a TTL, and the
// member in active-user and the realm's index scored by expiryTime.
func (s *Store) Bind(_ context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("memstore: encoding binding: %w", err)
	}
	key := UserKey(aor)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	s.ks.keys[key] = &entry{Kind: kindString, Str: string(payload), ExpireAt: expireAt(now, ttl)}
	for _, set := range []string{ActiveUsers, RealmKey(realmOf(aor))} {
		e, ok := s.ks.ofKind(set, kindZSet, now, true)
		if !ok {
			return fmt.Errorf("memstore: bind %s: %s: %w", key, set, ErrWrongType)
		}
		e.ZSet[key] = float64(b.ExpiryTime)
		// A realm's index expires with its longest-lived member (only
		// CountRealm prunes it); active-user is pruned periodically.
		if set != ActiveUsers && e.ExpireAt < b.ExpiryTime {
			e.ExpireAt = b.ExpiryTime
		}
	}
	s.dirty++
	return nil
}

// Unbind implements registrar.Store.
func (s *Store) Unbind(_ context.Context, aor string) error {
	key := UserKey(aor)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	delete(s.ks.keys, key)
	for _, set := range []string{ActiveUsers, RealmKey(realmOf(aor))} {
		if e, ok := s.ks.ofKind(set, kindZSet, now, false); ok && e != nil {
			delete(e.ZSet, key)
			s.ks.dropIfEmpty(set, e)
		}
	}
	s.dirty++
	return nil
}

// CountRealm implements registrar.Store: expired members are pruned first.
func (s *Store) CountRealm(_ context.Context, realm string) (int, error) {
	return s.pruneAndCount(RealmKey(realm))
}

// Count prunes expired members of active-user and returns how many remain.
func (s *Store) Count(_ context.Context) (int, error) { return s.pruneAndCount(ActiveUsers) }

func (s *Store) pruneAndCount(set string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e, ok := s.ks.ofKind(set, kindZSet, now, false)
	if !ok {
		return 0, fmt.Errorf("memstore: count %s: %w", set, ErrWrongType)
	}
	if e == nil {
		return 0, nil
	}
	if zremRangeByScore(e, float64(now)) > 0 {
		s.dirty++
	}
	s.ks.dropIfEmpty(set, e)
	return len(e.ZSet), nil
}

// List returns the unexpired bindings, optionally of one realm.
func (s *Store) List(_ context.Context, realm string) (map[string]registrar.Binding, error) {
	set := ActiveUsers
	if realm != "" {
		set = RealmKey(realm)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e, ok := s.ks.ofKind(set, kindZSet, now, false)
	if !ok {
		return nil, fmt.Errorf("memstore: list %s: %w", set, ErrWrongType)
	}
	out := map[string]registrar.Binding{}
	for _, key := range zrangeByScore(e, float64(now)) {
		v, ok := s.ks.ofKind(key, kindString, now, false)
		if !ok || v == nil {
			continue
		}
		var b registrar.Binding
		if err := json.Unmarshal([]byte(v.Str), &b); err != nil {
			return nil, fmt.Errorf("memstore: %s holds invalid JSON: %w", key, err)
		}
		out[strings.TrimPrefix(key, "user:")] = b
	}
	return out, nil
}

func realmOf(aor string) string {
	if i := strings.LastIndexByte(aor, '@'); i >= 0 {
		return aor[i+1:]
	}
	return aor
}

// --- generic primitives (the Redis commands other components need) ---

// Get returns a string value (GET).
func (s *Store) Get(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindString, s.nowMs(), false)
	if !ok {
		return "", false, fmt.Errorf("memstore: get %s: %w", key, ErrWrongType)
	}
	if e == nil {
		return "", false, nil
	}
	return e.Str, true, nil
}

// Set stores a string value with an optional TTL (SET key value [PX ttl]).
func (s *Store) Set(_ context.Context, key, value string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ks.keys[key] = &entry{Kind: kindString, Str: value, ExpireAt: expireAt(s.nowMs(), ttl)}
	s.dirty++
	return nil
}

// SetNX stores value only when key does not exist, with the TTL in the same
// step (SET key value NX PX ttl); it reports whether it stored.
func (s *Store) SetNX(_ context.Context, key, value string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	if s.ks.lookup(key, now) != nil {
		return false, nil
	}
	s.ks.keys[key] = &entry{Kind: kindString, Str: value, ExpireAt: expireAt(now, ttl)}
	s.dirty++
	return true, nil
}

// Expire sets a key's TTL (EXPIRE); it reports whether the key exists.
func (s *Store) Expire(_ context.Context, key string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e := s.ks.lookup(key, now)
	if e == nil {
		return false, nil
	}
	e.ExpireAt = expireAt(now, ttl)
	s.dirty++
	return true, nil
}

// TTL returns a key's remaining time: -1 without expiry, -2 when absent
// (Redis' conventions, in time.Duration units of one nanosecond).
func (s *Store) TTL(_ context.Context, key string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e := s.ks.lookup(key, now)
	switch {
	case e == nil:
		return -2, nil
	case e.ExpireAt == 0:
		return -1, nil
	}
	return time.Duration(e.ExpireAt-now) * time.Millisecond, nil
}

// Del removes keys (DEL) and returns how many existed.
func (s *Store) Del(_ context.Context, keys ...string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	n := 0
	for _, k := range keys {
		if s.ks.lookup(k, now) != nil {
			delete(s.ks.keys, k)
			n++
		}
	}
	if n > 0 {
		s.dirty++
	}
	return n, nil
}

// SAdd adds members to a set (SADD) and returns how many were new.
func (s *Store) SAdd(_ context.Context, key string, members ...string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindSet, s.nowMs(), true)
	if !ok {
		return 0, fmt.Errorf("memstore: sadd %s: %w", key, ErrWrongType)
	}
	n := 0
	for _, m := range members {
		if !e.Set[m] {
			e.Set[m] = true
			n++
		}
	}
	s.ks.dropIfEmpty(key, e)
	s.dirty++
	return n, nil
}

// SRem removes members from a set (SREM) and returns how many were there.
func (s *Store) SRem(_ context.Context, key string, members ...string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindSet, s.nowMs(), false)
	if !ok {
		return 0, fmt.Errorf("memstore: srem %s: %w", key, ErrWrongType)
	}
	if e == nil {
		return 0, nil
	}
	n := 0
	for _, m := range members {
		if e.Set[m] {
			delete(e.Set, m)
			n++
		}
	}
	s.ks.dropIfEmpty(key, e)
	s.dirty++
	return n, nil
}

// SMembers returns a set's members (SMEMBERS), sorted.
func (s *Store) SMembers(_ context.Context, key string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindSet, s.nowMs(), false)
	if !ok {
		return nil, fmt.Errorf("memstore: smembers %s: %w", key, ErrWrongType)
	}
	var out []string
	if e != nil {
		for m := range e.Set {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, nil
}

// HSet sets hash fields (HSET).
func (s *Store) HSet(_ context.Context, key string, fields map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindHash, s.nowMs(), true)
	if !ok {
		return fmt.Errorf("memstore: hset %s: %w", key, ErrWrongType)
	}
	for f, v := range fields {
		e.Hash[f] = v
	}
	s.ks.dropIfEmpty(key, e)
	s.dirty++
	return nil
}

// HGetAll returns a hash's fields (HGETALL).
func (s *Store) HGetAll(_ context.Context, key string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindHash, s.nowMs(), false)
	if !ok {
		return nil, fmt.Errorf("memstore: hgetall %s: %w", key, ErrWrongType)
	}
	out := map[string]string{}
	if e != nil {
		for f, v := range e.Hash {
			out[f] = v
		}
	}
	return out, nil
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
func load(path string, nowMs int64) (*keyspace, int, error) {
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
	ks := newKeyspace()
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
