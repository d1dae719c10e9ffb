// Package localbus carries registration events in process, for the
// embedded store (no Redis): the events.Bus as channel, the records of
// bindings and the `active-user` sorted set in the memstore.
package localbus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// recordPrefix prefixes the keys of binding records (as redisbus' keys).
const recordPrefix = "registration-events:binding:"

// activeUsers is the sorted set of bindings (member user:<aor>, score =
// expiry in ms), as in Redis.
const activeUsers = "active-user"

// Backend implements events.Backend in process.
type Backend struct {
	Bus   *events.Bus
	Store *memstore.Store
}

// Deliver implements events.Backend.
func (b *Backend) Deliver(ctx context.Context, publish [][]byte, keep []events.Keep) error {
	for _, k := range keep {
		if err := b.Store.Set(ctx, recordPrefix+k.AoR, string(k.Value), k.TTL); err != nil {
			return fmt.Errorf("localbus: keeping record: %w", err)
		}
	}
	for _, raw := range publish {
		b.Bus.Broadcast(raw)
	}
	return nil
}

// Subscribe implements events.Backend.
func (b *Backend) Subscribe(ctx context.Context) (<-chan []byte, error) {
	return b.Bus.Subscribe(ctx)
}

// ClaimExpired implements events.Backend.
func (b *Backend) ClaimExpired(ctx context.Context, now time.Time, limit int) ([]events.Claimed, int, error) {
	members, remaining, err := b.Store.ClaimExpired(ctx, activeUsers, now.UnixMilli(), limit)
	if err != nil {
		return nil, 0, fmt.Errorf("localbus: %w", err)
	}
	out := make([]events.Claimed, 0, len(members))
	for _, m := range members {
		aor := strings.TrimPrefix(m.Key, "user:")
		c := events.Claimed{AoR: aor, Expiry: int64(m.Score)}
		if v, ok, err := b.Store.Get(ctx, recordPrefix+aor); err == nil && ok {
			c.Value = []byte(v)
		}
		out = append(out, c)
	}
	return out, remaining, nil
}
