package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// KV is store.KV over Redis: the key-value operations of outbound
// registration (regbot: leader token, ephemeral gateways), gateway pings
// (blacklist), nonce claims and bans. memstore.Store offers the same
// methods for standalone mode; internal/store/kvtest keeps the two in step.
type KV struct {
	rdb rueidis.Client
}

var _ store.KV = (*KV)(nil)

// NewKV returns the key-value operations on rdb (internal/redisconn's
// client: behind the breaker).
func NewKV(rdb rueidis.Client) *KV { return &KV{rdb: rdb} }

// SetNX stores value with ttl only when key is absent, in one command
// (SET NX PX; the original's SETNX then EXPIRE was not atomic).
func (k *KV) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := setNXResult(k.rdb.Do(ctx, setNXCmd(k.rdb, key, value, ttl)))
	if err != nil {
		return false, fmt.Errorf("redis: set nx %s: %w", key, err)
	}
	return ok, nil
}

// Set stores a string value with an optional TTL.
func (k *KV) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	if err := k.rdb.Do(ctx, setCmd(k.rdb, key, value, ttl)).Error(); err != nil {
		return fmt.Errorf("redis: set %s: %w", key, err)
	}
	return nil
}

// IncrWithin increments a counter that expires window after its first
// increment (INCR and EXPIRE NX in one transaction).
func (k *KV) IncrWithin(ctx context.Context, key string, window time.Duration) (int, error) {
	c := k.rdb
	res, err := redisconn.Tx(ctx, c,
		c.B().Incr().Key(key).Build(),
		c.B().Expire().Key(key).Seconds(seconds(window)).Nx().Build())
	if err != nil {
		return 0, fmt.Errorf("redis: incr %s: %w", key, err)
	}
	n, err := res[0].AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis: incr %s: %w", key, err)
	}
	return int(n), nil
}

// seconds is d in whole seconds for EXPIRE, at least 1 (as go-redis
// formatted it before).
func seconds(d time.Duration) int64 { return max(int64(d/time.Second), 1) }

// expireIfEqual extends the TTL only while the key still holds the value,
// so an instance that lost the regbot token never extends the new holder's.
var expireIfEqual = newScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// delIfEqual deletes the key only while it holds the value.
var delIfEqual = newScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// ExpireIfEqual sets key's TTL only while it holds value (compare-and-set).
func (k *KV) ExpireIfEqual(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	n, err := expireIfEqual.lua.Exec(ctx, k.rdb, []string{key}, []string{value, strconv.FormatInt(ttl.Milliseconds(), 10)}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("redis: expire %s if equal: %w", key, err)
	}
	return n == 1, nil
}

// DelIfEqual deletes key only while it holds value.
func (k *KV) DelIfEqual(ctx context.Context, key, value string) (bool, error) {
	n, err := delIfEqual.lua.Exec(ctx, k.rdb, []string{key}, []string{value}).AsInt64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return false, fmt.Errorf("redis: del %s if equal: %w", key, err)
	}
	return n == 1, nil
}

// HSetTTL sets hash fields and the key's TTL in one transaction.
func (k *KV) HSetTTL(ctx context.Context, key string, fields map[string]string, ttl time.Duration) error {
	c := k.rdb
	hset := c.B().Hset().Key(key).FieldValue()
	for f, v := range fields {
		hset = hset.FieldValue(f, v)
	}
	if _, err := redisconn.Tx(ctx, c, hset.Build(), c.B().Pexpire().Key(key).Milliseconds(ttl.Milliseconds()).Build()); err != nil {
		return fmt.Errorf("redis: hset %s: %w", key, err)
	}
	return nil
}

// HDel removes hash fields.
func (k *KV) HDel(ctx context.Context, key string, fields ...string) error {
	if err := k.rdb.Do(ctx, k.rdb.B().Hdel().Key(key).Field(fields...).Build()).Error(); err != nil {
		return fmt.Errorf("redis: hdel %s: %w", key, err)
	}
	return nil
}

// Del removes keys and returns how many existed.
func (k *KV) Del(ctx context.Context, keys ...string) (int, error) {
	n, err := k.rdb.Do(ctx, k.rdb.B().Del().Key(keys...).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis: del: %w", err)
	}
	return int(n), nil
}

// Exists returns how many of keys exist.
func (k *KV) Exists(ctx context.Context, keys ...string) (int, error) {
	n, err := k.rdb.Do(ctx, k.rdb.B().Exists().Key(keys...).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis: exists: %w", err)
	}
	return int(n), nil
}

// Get returns a string value and whether it exists.
func (k *KV) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := k.rdb.Do(ctx, k.rdb.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis: get %s: %w", key, err)
	}
	return v, true, nil
}

// TTL returns a key's remaining time: -1 without expiry, -2 when absent
// (Redis' conventions, as memstore.Store.TTL), as durations of -1 and -2
// nanoseconds.
func (k *KV) TTL(ctx context.Context, key string) (time.Duration, error) {
	ms, err := k.rdb.Do(ctx, k.rdb.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis: pttl %s: %w", key, err)
	}
	if ms < 0 {
		return time.Duration(ms), nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// HGetAll returns a hash's fields.
func (k *KV) HGetAll(ctx context.Context, key string) (map[string]string, error) {
	m, err := k.rdb.Do(ctx, k.rdb.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis: hgetall %s: %w", key, err)
	}
	return m, nil
}
