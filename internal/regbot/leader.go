package regbot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leader is this instance's claim on <cluster>:regbot-token: only the
// instance holding the token registers to carriers.
type Leader struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration
}

// NewLeader returns a contender for the cluster's regbot token with a random
// token; ttl is how long a claim lives without renewal.
func NewLeader(rdb redis.UniversalClient, clusterID string, ttl time.Duration) *Leader {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Leader{rdb: rdb, key: clusterID + ":regbot-token", token: hex.EncodeToString(b[:]), ttl: ttl}
}

// Key is the Redis key contended for.
func (l *Leader) Key() string { return l.key }

// Token is this instance's token.
func (l *Leader) Token() string { return l.token }

// Claim takes the token when nobody holds it (atomic SET NX EX, unlike the
// original's SETNX then EXPIRE).
func (l *Leader) Claim(ctx context.Context) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.key, l.token, l.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("regbot: claim %s: %w", l.key, err)
	}
	return ok, nil
}

// renewScript extends the TTL only while the key still holds our token, so
// an instance that lost the token never overwrites the new holder's.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes the key only while it holds our token.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Renew extends our claim; false means another instance holds the token or
// it expired.
func (l *Leader) Renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("regbot: renew %s: %w", l.key, err)
	}
	return n == 1, nil
}

// Release gives the token up if we hold it.
func (l *Leader) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("regbot: release %s: %w", l.key, err)
	}
	return nil
}
