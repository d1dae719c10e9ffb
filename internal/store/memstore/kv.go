package memstore

import (
	"context"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// store.KV in process: regbot, the gateway pinger and bans use these in
// standalone mode (redisstore.KV offers the same over Redis). Each runs in
// one Update, hence atomically like the Lua scripts and transactions they
// stand for.
var _ store.KV = (*Store)(nil)

// Get returns a string value (GET).
func (s *Store) Get(_ context.Context, key string) (v string, ok bool, err error) {
	err = s.Update(func(tx *Tx) error {
		v, ok, err = tx.Get(key)
		return err
	})
	return v, ok, err
}

// Set stores a string value with an optional TTL (SET key value [PX ttl]).
func (s *Store) Set(_ context.Context, key, value string, ttl time.Duration) error {
	return s.Update(func(tx *Tx) error { return tx.Set(key, value, ttl) })
}

// SetNX stores value only when key does not exist, with the TTL in the same
// step (SET key value NX PX ttl); it reports whether it stored.
func (s *Store) SetNX(_ context.Context, key, value string, ttl time.Duration) (bool, error) {
	return do(s, func(tx *Tx) (bool, error) { return tx.SetNX(key, value, ttl) })
}

// ExpireIfEqual sets key's TTL only while it holds the string value.
func (s *Store) ExpireIfEqual(_ context.Context, key, value string, ttl time.Duration) (bool, error) {
	return do(s, func(tx *Tx) (bool, error) { return tx.ExpireIfEqual(key, value, ttl), nil })
}

// DelIfEqual deletes key only while it holds the string value.
func (s *Store) DelIfEqual(_ context.Context, key, value string) (bool, error) {
	return do(s, func(tx *Tx) (bool, error) { return tx.DelIfEqual(key, value), nil })
}

// IncrWithin increments a counter; a new one expires after window.
func (s *Store) IncrWithin(_ context.Context, key string, window time.Duration) (int, error) {
	return do(s, func(tx *Tx) (int, error) { return tx.IncrWithin(key, window) })
}

// HSetTTL sets hash fields and the key's TTL in one step (HSET + PEXPIRE
// in a transaction).
func (s *Store) HSetTTL(_ context.Context, key string, fields map[string]string, ttl time.Duration) error {
	return s.Update(func(tx *Tx) error {
		if err := tx.HSet(key, fields); err != nil {
			return err
		}
		tx.Expire(key, ttl)
		return nil
	})
}

// HDel removes hash fields (HDEL); the key goes with its last field.
func (s *Store) HDel(_ context.Context, key string, fields ...string) error {
	return s.Update(func(tx *Tx) error { return tx.HDel(key, fields...) })
}

// HGetAll returns a hash's fields (HGETALL).
func (s *Store) HGetAll(_ context.Context, key string) (map[string]string, error) {
	return do(s, func(tx *Tx) (map[string]string, error) { return tx.HGetAll(key) })
}

// Del removes keys (DEL) and returns how many existed.
func (s *Store) Del(_ context.Context, keys ...string) (int, error) {
	return do(s, func(tx *Tx) (int, error) { return tx.Del(keys...), nil })
}

// Exists returns how many of keys exist (EXISTS).
func (s *Store) Exists(_ context.Context, keys ...string) (int, error) {
	return do(s, func(tx *Tx) (int, error) { return tx.Exists(keys...), nil })
}

// TTL returns a key's remaining time: -1 without expiry, -2 when absent
// (Redis' conventions, in time.Duration units of one nanosecond).
func (s *Store) TTL(_ context.Context, key string) (time.Duration, error) {
	return do(s, func(tx *Tx) (time.Duration, error) { return tx.TTL(key), nil })
}
