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
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

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
	rdb     rueidis.Client
	cluster string
	// resubscribe is the wait before subscribing again after the
	// subscription's connection failed.
	resubscribe time.Duration
}

// New returns the backend of cluster (JAMBONES_CLUSTER_ID) on rdb
// (internal/redisconn's client: behind the breaker, Receive on a
// connection of its own).
func New(rdb rueidis.Client, cluster string) *Backend {
	return &Backend{rdb: rdb, cluster: cluster, resubscribe: 250 * time.Millisecond}
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
	c := b.rdb
	ch := Channel(b.cluster)
	cmds := make(rueidis.Commands, 0, len(keep)+len(publish))
	for _, k := range keep {
		key, value := BindingKey(b.cluster, k.AoR), rueidis.BinaryString(k.Value)
		if k.TTL > 0 {
			cmds = append(cmds, c.B().Set().Key(key).Value(value).PxMilliseconds(k.TTL.Milliseconds()).Build())
		} else {
			cmds = append(cmds, c.B().Set().Key(key).Value(value).Build())
		}
	}
	for _, raw := range publish {
		cmds = append(cmds, c.B().Publish().Channel(ch).Message(rueidis.BinaryString(raw)).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redisbus: deliver: %w", err)
		}
	}
	return nil
}

// Subscribe implements events.Backend. The first subscription is made
// before it returns (its failure is the error). When the subscription's
// connection fails later (Redis restarted, unreachable), it subscribes
// again until it succeeds; events of that time are lost.
func (b *Backend) Subscribe(ctx context.Context) (<-chan []byte, error) {
	out := make(chan []byte, 1024)
	first := make(chan error, 1)
	go func() {
		defer close(out)
		var confirmed atomic.Bool // set by the client's reader
		for {
			err := b.receive(ctx, out, func() {
				if confirmed.CompareAndSwap(false, true) {
					first <- nil
				}
			})
			if !confirmed.Load() {
				first <- fmt.Errorf("redisbus: subscribe: %w", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(b.resubscribe):
			}
		}
	}()
	if err := <-first; err != nil {
		return nil, err
	}
	return out, nil
}

// receive subscribes to the channel and copies its messages to out until
// ctx ends or the connection fails; subscribed is called when Redis
// confirms the subscription.
func (b *Backend) receive(ctx context.Context, out chan<- []byte, subscribed func()) error {
	hook := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" {
			subscribed()
		}
	})
	c := b.rdb
	return c.Receive(hook, c.B().Subscribe().Channel(Channel(b.cluster)).Build(), func(m rueidis.PubSubMessage) {
		select {
		case out <- []byte(m.Message):
		case <-ctx.Done():
		}
	})
}

// claimExpired removes the expired members of active-user (at most
// ARGV[2]) and returns them with their scores, and the remaining count.
// Redis runs a script atomically: two instances never claim one member.
var claimExpired = rueidis.NewLuaScript(`
local m = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, tonumber(ARGV[2]))
local members = {}
for i = 1, #m, 2 do members[#members + 1] = m[i] end
if #members > 0 then redis.call("ZREM", KEYS[1], unpack(members)) end
return {m, redis.call("ZCARD", KEYS[1])}`)

// ClaimExpired implements events.Backend.
func (b *Backend) ClaimExpired(ctx context.Context, now time.Time, limit int) ([]events.Claimed, int, error) {
	res, err := claimExpired.Exec(ctx, b.rdb, []string{activeUsers},
		[]string{strconv.FormatInt(now.UnixMilli(), 10), strconv.Itoa(limit)}).ToArray()
	if err != nil {
		return nil, 0, fmt.Errorf("redisbus: claiming expired bindings: %w", err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("redisbus: claiming expired bindings: unexpected answer of %d elements", len(res))
	}
	pairs, _ := res[0].AsStrSlice()
	remaining, _ := res[1].AsInt64()
	var out []events.Claimed
	var keys []string
	for i := 0; i+1 < len(pairs); i += 2 {
		member, score := pairs[i], pairs[i+1]
		ms, _ := strconv.ParseFloat(score, 64)
		aor := strings.TrimPrefix(member, "user:")
		out = append(out, events.Claimed{AoR: aor, Expiry: int64(ms)})
		keys = append(keys, BindingKey(b.cluster, aor))
	}
	if len(keys) == 0 {
		return nil, int(remaining), nil
	}
	// The records are read by the claimer only; they expire by themselves.
	vals, err := b.rdb.Do(ctx, b.rdb.B().Mget().Key(keys...).Build()).ToArray()
	if err != nil {
		// The expiries are claimed: report them without details.
		return out, int(remaining), nil
	}
	for i := range vals {
		if i >= len(out) {
			break
		}
		if v, err := vals[i].AsBytes(); err == nil {
			out[i].Value = v
		}
	}
	return out, int(remaining), nil
}
