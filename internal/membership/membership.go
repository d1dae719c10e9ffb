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
//
// In standalone mode (no Redis) the same keys live in an in-process
// memstore, and the scripts are Go functions run atomically by its Tx: one
// Sets type over two backends.
package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// Set names a membership set (without the cluster prefix).
type Set string

// The sets.
const (
	ActiveFS     Set = "active-fs"
	FSServiceURL Set = "fs-service-url"
	ActiveRTP    Set = "active-rtp"
	DrainedFS    Set = "drained-fs"
)

// expiring are the sets whose members are removed when silent.
var expiring = []Set{ActiveFS, FSServiceURL, ActiveRTP}

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

// Set is the set holding the members of kind k.
func (k Kind) Set() Set {
	if k == RTPServers {
		return ActiveRTP
	}
	return ActiveFS
}

// backend runs the atomic steps on the sets' keys: Lua scripts and
// transactions in Redis, Tx functions in a memstore. Members come sorted.
type backend interface {
	// add adds member to key, stamps it in lastSeenKey(key) and returns the size.
	add(ctx context.Context, key, member string, nowMs int64) (int64, error)
	// remove removes member and its stamp and returns the size.
	remove(ctx context.Context, key, member string) (int64, error)
	members(ctx context.Context, key string) ([]string, error)
	isMember(ctx context.Context, key, member string) (bool, error)
	// drain adds ip to drainedKey and removes the ip:port members of fsKey.
	drain(ctx context.Context, drainedKey, fsKey, ip string) ([]string, error)
	// undrain removes ip from drainedKey; it reports whether it was there.
	undrain(ctx context.Context, drainedKey, ip string) (bool, error)
	// sweep removes the members of key stamped before nowMs - expiresMs,
	// stamps unstamped ones with nowMs and drops stamps without a member.
	sweep(ctx context.Context, key string, nowMs, expiresMs int64) ([]string, error)
}

// Sets are the membership sets of one cluster.
type Sets struct {
	b       backend
	cluster string
	expires time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// New returns the sets of cluster (JAMBONES_CLUSTER_ID) in Redis; members
// not heard from within expires are removed by Sweep.
func New(rdb rueidis.Client, cluster string, expires time.Duration, log *slog.Logger) *Sets {
	return newSets(redisSets{rdb}, cluster, expires, log)
}

// NewEmbedded returns the sets kept in an in-process store (standalone mode).
func NewEmbedded(kv *memstore.Store, cluster string, expires time.Duration, log *slog.Logger) *Sets {
	return newSets(memSets{kv}, cluster, expires, log)
}

func newSets(b backend, cluster string, expires time.Duration, log *slog.Logger) *Sets {
	if cluster == "" {
		cluster = "default"
	}
	return &Sets{b: b, cluster: cluster, expires: expires, now: time.Now, log: log}
}

// Key returns the key of a set.
func (s *Sets) Key(set Set) string { return s.cluster + ":" + string(set) }

func lastSeenKey(setKey string) string { return setKey + ":lastseen" }

// Add records a check-in of member in set and returns the set's size.
func (s *Sets) Add(ctx context.Context, set Set, member string) (int64, error) {
	n, err := s.b.add(ctx, s.Key(set), member, s.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("membership: add %s to %s: %w", member, s.Key(set), err)
	}
	return n, nil
}

// Remove removes member from set and returns the set's size.
func (s *Sets) Remove(ctx context.Context, set Set, member string) (int64, error) {
	n, err := s.b.remove(ctx, s.Key(set), member)
	if err != nil {
		return 0, fmt.Errorf("membership: remove %s from %s: %w", member, s.Key(set), err)
	}
	return n, nil
}

// Members returns the sorted members of set.
func (s *Sets) Members(ctx context.Context, set Set) ([]string, error) {
	m, err := s.b.members(ctx, s.Key(set))
	if err != nil {
		return nil, fmt.Errorf("membership: members of %s: %w", s.Key(set), err)
	}
	return m, nil
}

// IsDrained reports whether the feature server ip is drained.
func (s *Sets) IsDrained(ctx context.Context, ip string) (bool, error) {
	ok, err := s.b.isMember(ctx, s.Key(DrainedFS), ip)
	if err != nil {
		return false, fmt.Errorf("membership: drained check of %s: %w", ip, err)
	}
	return ok, nil
}

// Drain adds ip to the drain list and removes its current active-fs
// members at once, so no new call is routed to it even before its next
// check-in; it returns the members removed.
func (s *Sets) Drain(ctx context.Context, ip netip.Addr) ([]string, error) {
	res, err := s.b.drain(ctx, s.Key(DrainedFS), s.Key(ActiveFS), ip.String())
	if err != nil {
		return nil, fmt.Errorf("membership: drain %s: %w", ip, err)
	}
	return res, nil
}

// Undrain removes ip from the drain list; it reports whether it was there.
func (s *Sets) Undrain(ctx context.Context, ip netip.Addr) (bool, error) {
	ok, err := s.b.undrain(ctx, s.Key(DrainedFS), ip.String())
	if err != nil {
		return false, fmt.Errorf("membership: undrain %s: %w", ip, err)
	}
	return ok, nil
}

// Sweep removes the members not heard from within the expiry interval and
// returns them per set key. A member without a timestamp (left by an
// instance that is gone, or added by an older sidecar) is watched from now
// on.
func (s *Sets) Sweep(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	now := s.now().UnixMilli()
	for _, set := range expiring {
		key := s.Key(set)
		removed, err := s.b.sweep(ctx, key, now, s.expires.Milliseconds())
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

// isPort reports whether s is a decimal port number (of an ip:port member).
func isPort(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
