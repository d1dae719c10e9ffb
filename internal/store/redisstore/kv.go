package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// KV is store.KV over Redis: the key-value operations of outbound
// registration (regbot: leader token, ephemeral gateways), gateway pings
// (blacklist), nonce claims and bans. memstore.Store offers the same
// methods for standalone mode; internal/store/kvtest keeps the two in step.
type KV struct {
	rdb redis.UniversalClient
}

var _ store.KV = (*KV)(nil)

// NewKV returns the key-value operations on rdb.
func NewKV(rdb redis.UniversalClient) *KV { return &KV{rdb: rdb} }

// SetNX stores value with ttl only when key is absent, in one command
// (SET NX PX; the original's SETNX then EXPIRE was not atomic).
func (k *KV) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := k.rdb.SetNX(ctx, key, value, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis: set nx %s: %w", key, err)
	}
	return ok, nil
}

// Set stores a string value with an optional TTL.
func (k *KV) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	if err := k.rdb.Set(ctx, key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis: set %s: %w", key, err)
	}
	return nil
}

// IncrWithin increments a counter that expires window after its first
// increment (INCR and EXPIRE NX in one transaction).
func (k *KV) IncrWithin(ctx context.Context, key string, window time.Duration) (int, error) {
	var incr *redis.IntCmd
	_, err := k.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.ExpireNX(ctx, key, window)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis: incr %s: %w", key, err)
	}
	return int(incr.Val()), nil
}

// expireIfEqual extends the TTL only while the key still holds the value,
// so an instance that lost the regbot token never extends the new holder's.
var expireIfEqual = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// delIfEqual deletes the key only while it holds the value.
var delIfEqual = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// ExpireIfEqual sets key's TTL only while it holds value (compare-and-set).
func (k *KV) ExpireIfEqual(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	n, err := expireIfEqual.Run(ctx, k.rdb, []string{key}, value, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis: expire %s if equal: %w", key, err)
	}
	return n == 1, nil
}

// DelIfEqual deletes key only while it holds value.
func (k *KV) DelIfEqual(ctx context.Context, key, value string) (bool, error) {
	n, err := delIfEqual.Run(ctx, k.rdb, []string{key}, value).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("redis: del %s if equal: %w", key, err)
	}
	return n == 1, nil
}

// HSetTTL sets hash fields and the key's TTL in one transaction.
func (k *KV) HSetTTL(ctx context.Context, key string, fields map[string]string, ttl time.Duration) error {
	pipe := k.rdb.TxPipeline()
	pipe.HSet(ctx, key, fields)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: hset %s: %w", key, err)
	}
	return nil
}

// HDel removes hash fields.
func (k *KV) HDel(ctx context.Context, key string, fields ...string) error {
	if err := k.rdb.HDel(ctx, key, fields...).Err(); err != nil {
		return fmt.Errorf("redis: hdel %s: %w", key, err)
	}
	return nil
}

// Del removes keys and returns how many existed.
func (k *KV) Del(ctx context.Context, keys ...string) (int, error) {
	n, err := k.rdb.Del(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: del: %w", err)
	}
	return int(n), nil
}

// Exists returns how many of keys exist.
func (k *KV) Exists(ctx context.Context, keys ...string) (int, error) {
	n, err := k.rdb.Exists(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: exists: %w", err)
	}
	return int(n), nil
}

// Get returns a string value and whether it exists.
func (k *KV) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := k.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis: get %s: %w", key, err)
	}
	return v, true, nil
}

// TTL returns a key's remaining time: -1 without expiry, -2 when absent
// (Redis' conventions, as memstore.Store.TTL).
func (k *KV) TTL(ctx context.Context, key string) (time.Duration, error) {
	d, err := k.rdb.PTTL(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: pttl %s: %w", key, err)
	}
	// go-redis passes -1/-2 through unscaled as nanoseconds.
	return d, nil
}

// HGetAll returns a hash's fields.
func (k *KV) HGetAll(ctx context.Context, key string) (map[string]string, error) {
	m, err := k.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: hgetall %s: %w", key, err)
	}
	return m, nil
}
