package memstore

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Tx is the keyspace inside Update: its commands run as one atomic step,
// like a Lua script or a MULTI block in Redis. Each command has the
// semantics of the Redis command of the same name.
type Tx struct {
	ks      *keyspace
	now     int64 // ms epoch, fixed for the whole step
	changed bool
}

// Update runs fn atomically; the state file is rewritten later if fn
// changed anything.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Tx{ks: s.ks, now: s.nowMs()}
	err := fn(tx)
	if tx.changed {
		s.dirty++
	}
	return err
}

// do runs one command in its own Update and returns its result.
func do[T any](s *Store, cmd func(tx *Tx) (T, error)) (T, error) {
	var v T
	err := s.Update(func(tx *Tx) error {
		var err error
		v, err = cmd(tx)
		return err
	})
	return v, err
}

// NowMs is the step's clock, in ms since the epoch.
func (tx *Tx) NowMs() int64 { return tx.now }

func (tx *Tx) of(op, key string, k kind, create bool) (*entry, error) {
	e, err := tx.ks.ofKind(key, k, tx.now, create)
	if err != nil {
		return nil, fmt.Errorf("memstore: %s %s: %w", op, key, err)
	}
	return e, nil
}

func (tx *Tx) put(key string, e *entry) error {
	if err := tx.ks.put(key, e, tx.now); err != nil {
		return fmt.Errorf("memstore: set %s: %w", key, err)
	}
	tx.changed = true
	return nil
}

// drop removes the collection key e when it became empty, and marks a change.
func (tx *Tx) drop(key string, e *entry) {
	tx.ks.dropIfEmpty(key, e)
	tx.changed = true
}

// Get returns a string value (GET).
func (tx *Tx) Get(key string) (string, bool, error) {
	e, err := tx.of("get", key, kindString, false)
	if err != nil || e == nil {
		return "", false, err
	}
	return e.Str, true, nil
}

// Set stores a string value with an optional TTL (SET key value [PX ttl]).
func (tx *Tx) Set(key, value string, ttl time.Duration) error {
	return tx.put(key, &entry{Kind: kindString, Str: value, ExpireAt: expireAt(tx.now, ttl)})
}

// SetNX stores value only when key does not exist, with the TTL in the same
// step (SET key value NX PX ttl); it reports whether it stored.
func (tx *Tx) SetNX(key, value string, ttl time.Duration) (bool, error) {
	if tx.ks.lookup(key, tx.now) != nil {
		return false, nil
	}
	return true, tx.Set(key, value, ttl)
}

// Expire sets a key's TTL (PEXPIRE); it reports whether the key exists.
func (tx *Tx) Expire(key string, ttl time.Duration) bool {
	e := tx.ks.lookup(key, tx.now)
	if e == nil {
		return false
	}
	e.ExpireAt = expireAt(tx.now, ttl)
	tx.changed = true
	return true
}

// TTL returns a key's remaining time: -1 without expiry, -2 when absent.
func (tx *Tx) TTL(key string) time.Duration {
	e := tx.ks.lookup(key, tx.now)
	switch {
	case e == nil:
		return -2
	case e.ExpireAt == 0:
		return -1
	}
	return time.Duration(e.ExpireAt-tx.now) * time.Millisecond
}

// Del removes keys (DEL) and returns how many existed.
func (tx *Tx) Del(keys ...string) int {
	n := tx.Exists(keys...)
	for _, k := range keys {
		delete(tx.ks.keys, k)
	}
	tx.changed = tx.changed || n > 0
	return n
}

// Exists returns how many of keys exist (EXISTS).
func (tx *Tx) Exists(keys ...string) int {
	n := 0
	for _, k := range keys {
		if tx.ks.lookup(k, tx.now) != nil {
			n++
		}
	}
	return n
}

// holds reports whether key holds the string value.
func (tx *Tx) holds(key, value string) bool {
	v, ok, err := tx.Get(key)
	return err == nil && ok && v == value
}

// ExpireIfEqual sets key's TTL only while it holds the string value.
func (tx *Tx) ExpireIfEqual(key, value string, ttl time.Duration) bool {
	return tx.holds(key, value) && tx.Expire(key, ttl)
}

// DelIfEqual deletes key only while it holds the string value.
func (tx *Tx) DelIfEqual(key, value string) bool {
	return tx.holds(key, value) && tx.Del(key) == 1
}

// IncrWithin increments an integer (INCR); a new key expires after window
// (EXPIRE NX).
func (tx *Tx) IncrWithin(key string, window time.Duration) (int, error) {
	e, err := tx.of("incr", key, kindString, false)
	if err != nil {
		return 0, err
	}
	if e == nil {
		return 1, tx.Set(key, "1", window)
	}
	n, err := strconv.Atoi(e.Str)
	if err != nil {
		return 0, fmt.Errorf("memstore: incr %s: not an integer", key)
	}
	e.Str = strconv.Itoa(n + 1)
	if e.ExpireAt == 0 {
		e.ExpireAt = expireAt(tx.now, window)
	}
	tx.changed = true
	return n + 1, nil
}

// HSet sets hash fields (HSET).
func (tx *Tx) HSet(key string, fields map[string]string) error {
	e, err := tx.of("hset", key, kindHash, true)
	if err != nil {
		return err
	}
	for f, v := range fields {
		e.Hash[f] = v
	}
	tx.drop(key, e)
	return nil
}

// HDel removes hash fields (HDEL); the key goes with its last field.
func (tx *Tx) HDel(key string, fields ...string) error {
	e, err := tx.of("hdel", key, kindHash, false)
	if err != nil || e == nil {
		return err
	}
	for _, f := range fields {
		delete(e.Hash, f)
	}
	tx.drop(key, e)
	return nil
}

// HGetAll returns a copy of a hash's fields (HGETALL).
func (tx *Tx) HGetAll(key string) (map[string]string, error) {
	e, err := tx.of("hgetall", key, kindHash, false)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if e != nil {
		for f, v := range e.Hash {
			out[f] = v
		}
	}
	return out, nil
}

// SAdd adds members to a set (SADD) and returns how many were new.
func (tx *Tx) SAdd(key string, members ...string) (int, error) {
	e, err := tx.of("sadd", key, kindSet, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if !e.Set[m] {
			e.Set[m] = true
			n++
		}
	}
	tx.drop(key, e)
	return n, nil
}

// SRem removes members from a set (SREM) and returns how many were there.
func (tx *Tx) SRem(key string, members ...string) (int, error) {
	e, err := tx.of("srem", key, kindSet, false)
	if err != nil || e == nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if e.Set[m] {
			delete(e.Set, m)
			n++
		}
	}
	tx.drop(key, e)
	return n, nil
}

// SMembers returns a set's members (SMEMBERS), sorted.
func (tx *Tx) SMembers(key string) ([]string, error) {
	e, err := tx.of("smembers", key, kindSet, false)
	if err != nil || e == nil {
		return nil, err
	}
	out := make([]string, 0, len(e.Set))
	for m := range e.Set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// SIsMember reports whether m is in the set (SISMEMBER).
func (tx *Tx) SIsMember(key, m string) (bool, error) {
	e, err := tx.of("sismember", key, kindSet, false)
	return e != nil && e.Set[m], err
}

// SCard returns a set's size (SCARD).
func (tx *Tx) SCard(key string) (int, error) {
	e, err := tx.of("scard", key, kindSet, false)
	if e == nil {
		return 0, err
	}
	return len(e.Set), err
}
