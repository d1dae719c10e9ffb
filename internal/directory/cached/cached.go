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
	accounts   map[string]entry[*registrar.Account]
	capacities map[string]entry[registrar.Capacities]
	clients    map[clientKey]entry[client]
}

// clientKey is a client's key: the account's SID (a string shared with its
// Account) and the username, which is the client's own (in client.s) when
// the directory spells it the same way, so that a cached client costs no
// key allocation of its own.
type clientKey struct{ account, user string }

type entry[V any] struct {
	v       V
	expires time.Duration // since Directory.base
}

// client is a cached registrar.Client in one allocation: with the stale
// window (an hour by default) every client seen in the last hour is held,
// 100,000 of them in the REGISTER benchmark's memory run. With clientKey
// a cached client costs ~222 bytes of heap instead of ~312 (a Client with
// strings of its own under a concatenated key; docs/performance.md,
// "Memory (issue 15)").
type client struct {
	s       string // Username then Password
	nameLen uint32
	flags   clientFlags
}

type clientFlags uint8

const (
	clientFound clientFlags = 1 << iota
	clientActive
	clientAppCalling
	clientQueueCalling
	clientUserCalling
)

func packClient(c *registrar.Client) client {
	if c == nil {
		return client{}
	}
	f := clientFound
	for _, b := range []struct {
		on   bool
		flag clientFlags
	}{{c.Active, clientActive}, {c.AllowDirectAppCalling, clientAppCalling},
		{c.AllowDirectQueueCalling, clientQueueCalling}, {c.AllowDirectUserCalling, clientUserCalling}} {
		if b.on {
			f |= b.flag
		}
	}
	return client{s: c.Username + c.Password, nameLen: uint32(len(c.Username)), flags: f}
}

// unpack returns a Client of its own to every caller (nil: no such client).
func (c client) unpack() *registrar.Client {
	if c.flags&clientFound == 0 {
		return nil
	}
	return &registrar.Client{
		Username:                c.s[:c.nameLen],
		Password:                c.s[c.nameLen:],
		Active:                  c.flags&clientActive != 0,
		AllowDirectAppCalling:   c.flags&clientAppCalling != 0,
		AllowDirectQueueCalling: c.flags&clientQueueCalling != 0,
		AllowDirectUserCalling:  c.flags&clientUserCalling != 0,
	}
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
		accounts:   map[string]entry[*registrar.Account]{},
		capacities: map[string]entry[registrar.Capacities]{},
		clients:    map[clientKey]entry[client]{},
	}
}

// lookup answers key from m or load; a loaded answer is stored under
// keep(key, answer) (the same key, or one sharing the answer's memory).
func lookup[K comparable, V any](d *Directory, m map[K]entry[V], key K, load func() (V, error), keep func(K, V) K) (V, error) {
	t := d.now()
	now := t.Sub(d.base)
	d.mu.Lock()
	e, cached := m[key]
	if cached && now < e.expires {
		d.mu.Unlock()
		return e.v, nil
	}
	d.mu.Unlock()
	v, err := load()
	if err != nil {
		if cached && errors.Is(err, breaker.ErrUnavailable) && now < e.expires+d.stale {
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
	if t.Sub(d.lastSweep) >= d.ttl {
		d.lastSweep = t
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
	m[keep(key, v)] = entry[V]{v: v, expires: now + d.ttl}
	return v, nil
}

// sweep removes the entries expired for longer than stale.
func sweep[K comparable, V any](m map[K]entry[V], now, stale time.Duration) {
	for k, e := range m {
		if now >= e.expires+stale {
			delete(m, k)
		}
	}
}

// same keeps a key as it is.
func same[K, V any](k K, _ V) K { return k }

// keepClientKey is the key a loaded client is stored under: its username is
// the client's own when spelled the same, else a copy (never a string of
// the request, which would keep the request's memory alive).
func keepClientKey(k clientKey, c client) clientKey {
	if name := c.s[:c.nameLen]; name == k.user {
		k.user = name
	} else {
		k.user = strings.Clone(k.user)
	}
	return k
}

// AccountByRealm implements registrar.Directory (unknown realms are cached too).
func (d *Directory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	return lookup(d, d.accounts, realm, func() (*registrar.Account, error) { return d.next.AccountByRealm(ctx, realm) }, same)
}

// Capacities implements registrar.Directory.
func (d *Directory) Capacities(ctx context.Context, accountSID string) (registrar.Capacities, error) {
	return lookup(d, d.capacities, accountSID, func() (registrar.Capacities, error) { return d.next.Capacities(ctx, accountSID) }, same)
}

// Client implements registrar.Directory.
func (d *Directory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	c, err := lookup(d, d.clients, clientKey{accountSID, username}, func() (client, error) {
		c, err := d.next.Client(ctx, accountSID, username)
		return packClient(c), err
	}, keepClientKey)
	if err != nil {
		return nil, err
	}
	return c.unpack(), nil
}
