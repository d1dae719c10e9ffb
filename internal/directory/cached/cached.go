// Package cached puts a short-lived cache in front of a registrar.Directory.
//
// Every REGISTER looks its account up twice (challenge, then authenticated
// request) and a client once, and the jambonz schema has no index on
// clients(account_sid, username): without a cache each registration costs
// MySQL a scan of the account's clients. A few seconds of staleness is the
// price: a changed password or a deactivated account applies after TTL.
package cached

import (
	"context"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Directory caches lookups of an underlying directory. Errors are not cached.
type Directory struct {
	next  registrar.Directory
	ttl   time.Duration
	limit int
	now   func() time.Time

	mu         sync.Mutex
	lastSweep  time.Time
	accounts   map[string]entry[*registrar.Account]
	capacities map[string]entry[registrar.Capacities]
	clients    map[string]entry[*registrar.Client]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New caches next's answers for ttl, holding at most limit entries per kind.
func New(next registrar.Directory, ttl time.Duration, limit int) *Directory {
	return &Directory{
		next: next, ttl: ttl, limit: limit, now: time.Now,
		accounts:   map[string]entry[*registrar.Account]{},
		capacities: map[string]entry[registrar.Capacities]{},
		clients:    map[string]entry[*registrar.Client]{},
	}
}

func lookup[V any](d *Directory, m map[string]entry[V], key string, load func() (V, error)) (V, error) {
	now := d.now()
	d.mu.Lock()
	if e, ok := m[key]; ok && now.Before(e.expires) {
		d.mu.Unlock()
		return e.v, nil
	}
	d.mu.Unlock()
	v, err := load()
	if err != nil {
		return v, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Expired entries are swept at most once per TTL, and whenever a map is
	// full: without the periodic sweep every user seen since start stayed in
	// memory until the limit (100,000 clients held ~30 MB of heap in the
	// REGISTER benchmark's 100k-registration run, bench/RESULTS.md).
	if now.Sub(d.lastSweep) >= d.ttl {
		d.lastSweep = now
		sweep(d.accounts, now)
		sweep(d.capacities, now)
		sweep(d.clients, now)
	}
	if len(m) >= d.limit {
		sweep(m, now)
		if len(m) >= d.limit {
			return v, nil // full of live entries: serve uncached
		}
	}
	m[key] = entry[V]{v: v, expires: now.Add(d.ttl)}
	return v, nil
}

func sweep[V any](m map[string]entry[V], now time.Time) {
	for k, e := range m {
		if !now.Before(e.expires) {
			delete(m, k)
		}
	}
}

// AccountByRealm implements registrar.Directory (unknown realms are cached too).
func (d *Directory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	return lookup(d, d.accounts, realm, func() (*registrar.Account, error) { return d.next.AccountByRealm(ctx, realm) })
}

// Capacities implements registrar.Directory.
func (d *Directory) Capacities(ctx context.Context, accountSID string) (registrar.Capacities, error) {
	return lookup(d, d.capacities, accountSID, func() (registrar.Capacities, error) { return d.next.Capacities(ctx, accountSID) })
}

// Client implements registrar.Directory.
func (d *Directory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	return lookup(d, d.clients, accountSID+"\x00"+username, func() (*registrar.Client, error) {
		return d.next.Client(ctx, accountSID, username)
	})
}
