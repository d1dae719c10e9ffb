// Package redisbus carries registration events through Redis: PUBLISH on
// `<cluster>:registration-events`, each binding's last register/refresh kept
// under `<cluster>:registration-events:binding:<aor>` for its expiry event,
// and the expiry sweep that claims lapsed members of `active-user`
// atomically (one Lua script), so each expiry is reported by one instance.
package redisbus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

// activeUsers is the cluster-wide sorted set of bindings (member
// user:<aor>, score = expiry in ms) other jambonz programs read.
const activeUsers = "active-user"

// Channel returns the pub/sub channel of a cluster.
func Channel(cluster string) string { return cluster + ":registration-events" }

// BindingKey returns where the record of aor's binding is kept.
func BindingKey(cluster, aor string) string { return Channel(cluster) + ":binding:" + aor }

// Backend implements events.Backend on Redis.
type Backend struct {
	rdb     redis.UniversalClient
	cluster string
}

// New returns the backend of cluster (JAMBONES_CLUSTER_ID) on rdb.
func New(rdb redis.UniversalClient, cluster string) *Backend {
	return &Backend{rdb: rdb, cluster: cluster}
}

// Channel implements events.InlineKeys: the store then carries the events
// of binding writes in their own round trip.
func (b *Backend) Channel() string { return Channel(b.cluster) }

// BindingKey implements events.InlineKeys.
func (b *Backend) BindingKey(aor string) string { return BindingKey(b.cluster, aor) }

// Deliver implements events.Backend: one pipelined round trip.
func (b *Backend) Deliver(ctx context.Context, publish [][]byte, keep []events.Keep) error {
	if len(publish) == 0 && len(keep) == 0 {
		return nil
	}
	ch := Channel(b.cluster)
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keep {
			p.Set(ctx, BindingKey(b.cluster, k.AoR), k.Value, k.TTL)
		}
		for _, raw := range publish {
			p.Publish(ctx, ch, raw)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisbus: deliver: %w", err)
	}
	return nil
}

// Subscribe implements events.Backend. While Redis is unreachable the
// subscription reconnects by itself (go-redis); events of that time are lost.
func (b *Backend) Subscribe(ctx context.Context) (<-chan []byte, error) {
	sub := b.rdb.Subscribe(ctx, Channel(b.cluster))
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		sub.Close()
		return nil, fmt.Errorf("redisbus: subscribe: %w", err)
	}
	out := make(chan []byte, 1024)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- []byte(m.Payload):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// claimExpired removes the expired members of active-user (at most
// ARGV[2]) and returns them with their scores, and the remaining count.
// Redis runs a script atomically: two instances never claim one member.
var claimExpired = redis.NewScript(`
local m = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, tonumber(ARGV[2]))
local members = {}
for i = 1, #m, 2 do members[#members + 1] = m[i] end
if #members > 0 then redis.call("ZREM", KEYS[1], unpack(members)) end
return {m, redis.call("ZCARD", KEYS[1])}`)

// ClaimExpired implements events.Backend.
func (b *Backend) ClaimExpired(ctx context.Context, now time.Time, limit int) ([]events.Claimed, int, error) {
	res, err := claimExpired.Run(ctx, b.rdb, []string{activeUsers}, now.UnixMilli(), limit).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("redisbus: claiming expired bindings: %w", err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("redisbus: claiming expired bindings: unexpected answer %v", res)
	}
	pairs, _ := res[0].([]any)
	remaining, _ := res[1].(int64)
	var out []events.Claimed
	var keys []string
	for i := 0; i+1 < len(pairs); i += 2 {
		member, _ := pairs[i].(string)
		score, _ := pairs[i+1].(string)
		ms, _ := strconv.ParseFloat(score, 64)
		aor := strings.TrimPrefix(member, "user:")
		out = append(out, events.Claimed{AoR: aor, Expiry: int64(ms)})
		keys = append(keys, BindingKey(b.cluster, aor))
	}
	if len(keys) == 0 {
		return nil, int(remaining), nil
	}
	// The records are read by the claimer only; they expire by themselves.
	vals, err := b.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		// The expiries are claimed: report them without details.
		return out, int(remaining), nil
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i].Value = []byte(s)
		}
	}
	return out, int(remaining), nil
}
