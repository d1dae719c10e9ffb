package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bans keeps guard bans and failure counts in Redis so that every instance
// of the cluster agrees: `<cluster>:ban:<key>` and `<cluster>:authfail:<key>`.
type Bans struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewBans returns Redis bans under the cluster prefix.
func NewBans(rdb redis.UniversalClient, cluster string) *Bans {
	return &Bans{rdb: rdb, prefix: cluster + ":"}
}

// Banned reports whether key is banned.
func (b *Bans) Banned(ctx context.Context, key string) (bool, error) {
	n, err := b.rdb.Exists(ctx, b.prefix+"ban:"+key).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: ban lookup: %w", err)
	}
	return n > 0, nil
}

// Ban bans key for d.
func (b *Bans) Ban(ctx context.Context, key string, d time.Duration) error {
	if err := b.rdb.Set(ctx, b.prefix+"ban:"+key, "1", d).Err(); err != nil {
		return fmt.Errorf("redisstore: ban: %w", err)
	}
	return nil
}

// Failure counts one failure in a window that starts with the first one.
func (b *Bans) Failure(ctx context.Context, key string, window time.Duration) (int, error) {
	k := b.prefix + "authfail:" + key
	var incr *redis.IntCmd
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.ExpireNX(ctx, k, window)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisstore: failure count: %w", err)
	}
	return int(incr.Val()), nil
}
