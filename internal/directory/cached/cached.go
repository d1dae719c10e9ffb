// Package cached puts a short-lived cache in front of a registrar.Directory.
//
// Every REGISTER looks its account up twice (challenge, then authenticated
// request) and a client once, and the jambonz schema has no index on
// clients(account_sid, username): without a cache each registration costs
// MySQL a scan of the account's clients. A few seconds of staleness is the
// price: a changed password or a deactivated account applies after TTL.
//
// While the directory is unavailable (breaker.ErrUnavailable: MySQL down)
// an expired entry is still served for a while (WithStale), so that phones
// of accounts seen recently keep registering during a MySQL outage.
package cached

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Directory caches lookups of an underlying directory. Errors are not cached.
type Directory struct {
	next  registrar.Directory
	ttl   time.Duration
	stale time.Duration
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

// WithStale keeps entries for d after they expire, to be served only while
// the underlying directory is unavailable, and returns d.
func (d *Directory) WithStale(stale time.Duration) *Directory {
	d.stale = stale
	return d
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
	e, cached := m[key]
	if cached && now.Before(e.expires) {
		d.mu.Unlock()
		return e.v, nil
	}
	d.mu.Unlock()
	v, err := load()
	if err != nil {
		if cached && errors.Is(err, breaker.ErrUnavailable) && now.Before(e.expires.Add(d.stale)) {
			return e.v, nil // the directory is down: the last answer beats a 503
		}
		return v, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Entries past their stale time are swept at most once per TTL, and
	// whenever a map is full (then expired ones go even if still servable
	// as stale): without the periodic sweep every user seen since start
	// stayed in memory until the limit (100,000 clients held ~30 MB of heap
	// in the REGISTER benchmark's 100k-registration run, bench/RESULTS.md).
	if now.Sub(d.lastSweep) >= d.ttl {
		d.lastSweep = now
		sweep(d.accounts, now, d.stale)
		sweep(d.capacities, now, d.stale)
		sweep(d.clients, now, d.stale)
	}
	if len(m) >= d.limit {
		sweep(m, now, 0)
		if len(m) >= d.limit {
			return v, nil // full of live entries: serve uncached
		}
	}
	m[key] = entry[V]{v: v, expires: now.Add(d.ttl)}
	return v, nil
}

// sweep removes the entries expired for longer than stale.
func sweep[V any](m map[string]entry[V], now time.Time, stale time.Duration) {
	for k, e := range m {
		if !now.Before(e.expires.Add(stale)) {
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
