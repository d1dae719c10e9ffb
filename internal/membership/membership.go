// Package membership keeps the cluster-wide sets of feature servers and RTP
// servers that announce themselves with OPTIONS check-ins (docs/contract.md#redis):
// `<cluster>:active-fs`, `<cluster>:fs-service-url`, `<cluster>:active-rtp`
// and the drain list `<cluster>:drained-fs`.
//
// Every SBC of a cluster writes the same sets, so the "last heard from" time
// of a member is kept in Redis too, in a hash next to each set
// (`<set>:lastseen`, member -> ms epoch; the newer Node.js sidecar uses the
// same hash), not in process memory. The expiry sweep is one Lua script per
// set: it runs atomically inside Redis, so it can never remove a member
// between another instance's check-in and its timestamp, and a member only
// expires when no SBC at all has heard from it within the interval.
package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Names of the sets (without the cluster prefix).
const (
	ActiveFS     = "active-fs"
	FSServiceURL = "fs-service-url"
	ActiveRTP    = "active-rtp"
	DrainedFS    = "drained-fs"
)

// Kind is a kind of member. Its value is the name the member count is published under: the
// StatsD gauge of the original sidecar and the kind label of the members Prometheus gauge.
type Kind string

// The kinds of members.
const (
	FeatureServers Kind = "featureservers"
	RTPServers     Kind = "rtpservers"
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{FeatureServers, RTPServers}

// Set is the set (without the cluster prefix) holding the members of kind k.
func (k Kind) Set() string {
	if k == RTPServers {
		return ActiveRTP
	}
	return ActiveFS
}

// Sets is the Redis implementation.
type Sets struct {
	rdb     redis.UniversalClient
	cluster string
	expires time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// New returns the sets of cluster (JAMBONES_CLUSTER_ID); members not heard
// from within expires are removed by Sweep.
func New(rdb redis.UniversalClient, cluster string, expires time.Duration, log *slog.Logger) *Sets {
	if cluster == "" {
		cluster = "default"
	}
	return &Sets{rdb: rdb, cluster: cluster, expires: expires, now: time.Now, log: log}
}

// Key returns the Redis key of a set name.
func (s *Sets) Key(set string) string { return s.cluster + ":" + set }

func lastSeenKey(setKey string) string { return setKey + ":lastseen" }

// Add records a check-in of member in set and returns the set's size.
func (s *Sets) Add(ctx context.Context, set, member string) (int64, error) {
	key := s.Key(set)
	var card *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, member)
		p.HSet(ctx, lastSeenKey(key), member, s.now().UnixMilli())
		card = p.SCard(ctx, key)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("membership: add %s to %s: %w", member, key, err)
	}
	return card.Val(), nil
}

// Remove removes member from set and returns the set's size.
func (s *Sets) Remove(ctx context.Context, set, member string) (int64, error) {
	key := s.Key(set)
	var card *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, key, member)
		p.HDel(ctx, lastSeenKey(key), member)
		card = p.SCard(ctx, key)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("membership: remove %s from %s: %w", member, key, err)
	}
	return card.Val(), nil
}

// Members returns the sorted members of set.
func (s *Sets) Members(ctx context.Context, set string) ([]string, error) {
	m, err := s.rdb.SMembers(ctx, s.Key(set)).Result()
	if err != nil {
		return nil, fmt.Errorf("membership: members of %s: %w", s.Key(set), err)
	}
	sort.Strings(m)
	return m, nil
}

// IsDrained reports whether the feature server ip is drained.
func (s *Sets) IsDrained(ctx context.Context, ip string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.Key(DrainedFS), ip).Result()
	if err != nil {
		return false, fmt.Errorf("membership: drained check of %s: %w", ip, err)
	}
	return ok, nil
}

// drainScript adds ARGV[1] to the drain list and removes its `ip:port`
// members from active-fs at once, so no new call is routed to it even
// before its next check-in.
var drainScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local prefix = ARGV[1] .. ':'
local removed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if string.sub(m, 1, #prefix) == prefix and string.match(string.sub(m, #prefix + 1), '^%d+$') then
    redis.call('SREM', KEYS[2], m)
    redis.call('HDEL', KEYS[3], m)
    table.insert(removed, m)
  end
end
return removed
`)

// Drain adds ip to the drain list and removes its current active-fs
// members; it returns the members removed.
func (s *Sets) Drain(ctx context.Context, ip netip.Addr) ([]string, error) {
	fs := s.Key(ActiveFS)
	res, err := drainScript.Run(ctx, s.rdb, []string{s.Key(DrainedFS), fs, lastSeenKey(fs)}, ip.String()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("membership: drain %s: %w", ip, err)
	}
	return res, nil
}

// Undrain removes ip from the drain list; it reports whether it was there.
func (s *Sets) Undrain(ctx context.Context, ip netip.Addr) (bool, error) {
	n, err := s.rdb.SRem(ctx, s.Key(DrainedFS), ip.String()).Result()
	if err != nil {
		return false, fmt.Errorf("membership: undrain %s: %w", ip, err)
	}
	return n > 0, nil
}

// sweepScript removes the members of KEYS[1] whose last check-in
// (KEYS[2][member]) is older than ARGV[1] - ARGV[2]. A member without a
// timestamp (left by an instance that is gone, or added by an older
// sidecar) gets ARGV[1], so it is watched from now on. Timestamps without a
// member are dropped.
var sweepScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local limit = now - tonumber(ARGV[2])
local removed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local seen = tonumber(redis.call('HGET', KEYS[2], m))
  if not seen then
    redis.call('HSET', KEYS[2], m, ARGV[1])
  elseif seen < limit then
    redis.call('SREM', KEYS[1], m)
    redis.call('HDEL', KEYS[2], m)
    table.insert(removed, m)
  end
end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('SISMEMBER', KEYS[1], m) == 0 then
    redis.call('HDEL', KEYS[2], m)
  end
end
return removed
`)

// Sweep removes the members not heard from within the expiry interval and
// returns them per set key.
func (s *Sets) Sweep(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	ms := strconv.FormatInt(s.expires.Milliseconds(), 10)
	for _, set := range []string{ActiveFS, FSServiceURL, ActiveRTP} {
		key := s.Key(set)
		removed, err := sweepScript.Run(ctx, s.rdb, []string{key, lastSeenKey(key)}, now, ms).StringSlice()
		if err != nil {
			return out, fmt.Errorf("membership: sweep %s: %w", key, err)
		}
		if len(removed) > 0 {
			out[key] = removed
		}
	}
	return out, nil
}

// Run sweeps at start (adopting members already present) and every
// interval until ctx ends.
func (s *Sets) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		removed, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("membership: expiry sweep failed", "err", err)
		}
		for key, members := range removed {
			s.log.Info("membership: expired members", "set", key, "members", strings.Join(members, ","))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
