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
	"strings"
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

	base time.Time // expiries are durations since base (monotonic, 8 bytes)

	mu         sync.Mutex
	lastSweep  time.Time
	accounts   table[*registrar.Account]   // by realm
	capacities table[registrar.Capacities] // by account SID
	clients    clientTable
}

// table is a map of entries and the most it held since it was made (for
// sweep's rebuild).
type table[V any] struct {
	m    map[string]entry[V]
	peak int
}

type entry[V any] struct {
	v       V
	expires time.Duration // since Directory.base
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
		next: next, ttl: ttl, limit: limit, now: time.Now, base: time.Now(),
		accounts:   table[*registrar.Account]{m: map[string]entry[*registrar.Account]{}},
		capacities: table[registrar.Capacities]{m: map[string]entry[registrar.Capacities]{}},
		clients:    newClientTable(),
	}
}

// lookup answers key from t or load.
func lookup[V any](d *Directory, t *table[V], key string, load func() (V, error)) (V, error) {
	at := d.now()
	now := at.Sub(d.base)
	d.mu.Lock()
	e, cached := t.m[key]
	d.mu.Unlock()
	if cached && now < e.expires {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		if cached && errors.Is(err, breaker.ErrUnavailable) && now < e.expires+d.stale {
			return e.v, nil // the directory is down: the last answer beats a 503
		}
		return v, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep(at, now)
	if len(t.m) >= d.limit {
		t.sweep(now, 0)
		if len(t.m) >= d.limit {
			return v, nil // full of live entries: serve uncached
		}
	}
	// A key of the request's (a realm parsed from its To header) would keep
	// the header's string for as long as the entry is kept.
	t.m[strings.Clone(key)] = entry[V]{v: v, expires: now + d.ttl}
	t.peak = max(t.peak, len(t.m))
	return v, nil
}

// sweep removes the entries past their stale time at most once per TTL;
// d.mu is held. A full map is also swept when an entry is added (then
// expired ones go even if still servable as stale). Without the periodic
// sweep every user seen since start stayed in memory until the limit
// (100,000 clients held ~30 MB of heap in the REGISTER benchmark's
// 100k-registration run, bench/RESULTS.md).
func (d *Directory) sweep(at time.Time, now time.Duration) {
	if at.Sub(d.lastSweep) < d.ttl {
		return
	}
	d.lastSweep = at
	d.accounts.sweep(now, d.stale)
	d.capacities.sweep(now, d.stale)
	d.clients.sweep(now, d.stale)
}

// sweep removes the entries expired for longer than stale, and rebuilds the
// map when it has shrunk to a quarter of its peak (clientTable.sweep).
func (t *table[V]) sweep(now, stale time.Duration) {
	for k, e := range t.m {
		if now >= e.expires+stale {
			delete(t.m, k)
		}
	}
	if t.peak >= shrinkFrom && len(t.m) < t.peak/4 {
		t.m = shrunk(t.m)
		t.peak = len(t.m)
	}
}

// AccountByRealm implements registrar.Directory (unknown realms are cached too).
func (d *Directory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	return lookup(d, &d.accounts, realm, func() (*registrar.Account, error) { return d.next.AccountByRealm(ctx, realm) })
}

// Capacities implements registrar.Directory.
func (d *Directory) Capacities(ctx context.Context, accountSID string) (registrar.Capacities, error) {
	return lookup(d, &d.capacities, accountSID, func() (registrar.Capacities, error) { return d.next.Capacities(ctx, accountSID) })
}

// Client implements registrar.Directory. The same steps as lookup, on the
// compact clientTable.
func (d *Directory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	at := d.now()
	now := at.Sub(d.base)
	d.mu.Lock()
	e, cached := d.clients.get(accountSID, username)
	d.mu.Unlock()
	if cached && now < e.expires {
		return e.unpack(username), nil
	}
	c, err := d.next.Client(ctx, accountSID, username)
	if err != nil {
		if cached && errors.Is(err, breaker.ErrUnavailable) && now < e.expires+d.stale {
			return e.unpack(username), nil // the directory is down: the last answer beats a 503
		}
		return nil, err
	}
	d.mu.Lock()
	d.sweep(at, now)
	if d.clients.len() >= d.limit {
		d.clients.sweep(now, 0)
	}
	if d.clients.len() >= d.limit { // full of live entries: serve uncached
		d.mu.Unlock()
		_, rest := packClient(0, username, c)
		return clientEntry{rest: rest}.unpack(username), nil
	}
	e = d.clients.put(accountSID, username, c, now+d.ttl)
	d.mu.Unlock()
	return e.unpack(username), nil
}
