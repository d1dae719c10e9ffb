// Package dircache keeps account lookups for a short time. A registration is
// two REGISTERs a few milliseconds apart (challenge, then credentials) that both
// look the account up by realm; under load the same realms come back all the
// time. Profiling the REGISTER benchmark (bench/run.sh) showed the account query
// as one of three MySQL round trips per registration, and MariaDB as the largest
// CPU consumer after the service itself.
//
// Only AccountByRealm is cached, answers and "no such realm" alike, for TTL
// (one second by default): an account deactivated or re-pointed to another
// webhook takes effect at most that much later. Errors are never cached.
// Capacities and Client go straight through.
package dircache

import (
	"context"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// maxEntries bounds the cache: a flood of random realms must not grow it
// without limit; when full it is emptied (entries live one TTL anyway).
const maxEntries = 10000

// Directory wraps a registrar.Directory.
type Directory struct {
	registrar.Directory
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	acct    *registrar.Account
	expires time.Time
}

// New caches d's accounts for ttl (<= 0: one second); now is the clock (nil: time.Now).
func New(d registrar.Directory, ttl time.Duration, now func() time.Time) *Directory {
	if ttl <= 0 {
		ttl = time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Directory{Directory: d, ttl: ttl, now: now, entries: map[string]entry{}}
}

// AccountByRealm answers from the cache while the entry is fresh. The returned
// account is shared: callers must not modify it (the registrar does not).
func (c *Directory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	t := c.now()
	c.mu.Lock()
	e, ok := c.entries[realm]
	c.mu.Unlock()
	if ok && t.Before(e.expires) {
		return e.acct, nil
	}
	acct, err := c.Directory.AccountByRealm(ctx, realm)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) >= maxEntries {
		clear(c.entries)
	}
	c.entries[realm] = entry{acct: acct, expires: t.Add(c.ttl)}
	c.mu.Unlock()
	return acct, nil
}
