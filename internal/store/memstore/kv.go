package memstore

import (
	"context"
	"fmt"
	"time"
)

// The compare-and-set and hash operations regbot and the gateway pinger
// need (redisstore.KV offers the same over Redis). Each runs under the
// store's mutex, hence atomically like the Lua scripts they stand for.

// ExpireIfEqual sets key's TTL only while it holds the string value.
func (s *Store) ExpireIfEqual(_ context.Context, key, value string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e := s.ks.lookup(key, now)
	if e == nil || e.Kind != kindString || e.Str != value {
		return false, nil
	}
	e.ExpireAt = expireAt(now, ttl)
	s.dirty++
	return true, nil
}

// DelIfEqual deletes key only while it holds the string value.
func (s *Store) DelIfEqual(_ context.Context, key, value string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ks.lookup(key, s.nowMs())
	if e == nil || e.Kind != kindString || e.Str != value {
		return false, nil
	}
	delete(s.ks.keys, key)
	s.dirty++
	return true, nil
}

// HSetTTL sets hash fields and the key's TTL in one step (HSET + PEXPIRE
// in a transaction).
func (s *Store) HSetTTL(_ context.Context, key string, fields map[string]string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	e, ok := s.ks.ofKind(key, kindHash, now, true)
	if !ok {
		return fmt.Errorf("memstore: hset %s: %w", key, ErrWrongType)
	}
	for f, v := range fields {
		e.Hash[f] = v
	}
	e.ExpireAt = expireAt(now, ttl)
	s.ks.dropIfEmpty(key, e)
	s.dirty++
	return nil
}

// HDel removes hash fields (HDEL); the key goes with its last field.
func (s *Store) HDel(_ context.Context, key string, fields ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(key, kindHash, s.nowMs(), false)
	if !ok {
		return fmt.Errorf("memstore: hdel %s: %w", key, ErrWrongType)
	}
	if e == nil {
		return nil
	}
	for _, f := range fields {
		delete(e.Hash, f)
	}
	s.ks.dropIfEmpty(key, e)
	s.dirty++
	return nil
}

// Exists returns how many of keys exist (EXISTS).
func (s *Store) Exists(_ context.Context, keys ...string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMs()
	n := 0
	for _, k := range keys {
		if s.ks.lookup(k, now) != nil {
			n++
		}
	}
	return n, nil
}
