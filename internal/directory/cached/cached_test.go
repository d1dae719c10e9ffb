package cached

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

type countingDir struct {
	calls int
	fail  bool
}

func (c *countingDir) AccountByRealm(context.Context, string) (*registrar.Account, error) {
	c.calls++
	if c.fail {
		return nil, errors.New("down")
	}
	return &registrar.Account{SID: "a"}, nil
}
func (c *countingDir) Capacities(context.Context, string) (registrar.Capacities, error) {
	c.calls++
	return registrar.Capacities{Devices: 1}, nil
}
func (c *countingDir) Client(context.Context, string, string) (*registrar.Client, error) {
	c.calls++
	return nil, nil
}

func TestDirectory_CachesUntilTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	next := &countingDir{}
	d := New(next, 5*time.Second, 10)
	d.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, _ = d.AccountByRealm(ctx, "r")
		_, _ = d.Client(ctx, "a", "u") // a nil client (unknown) is cached too
		_, _ = d.Capacities(ctx, "a")
	}
	if next.calls != 3 {
		t.Errorf("calls = %d, want 3 (one per kind)", next.calls)
	}
	now = now.Add(6 * time.Second)
	_, _ = d.AccountByRealm(ctx, "r")
	if next.calls != 4 {
		t.Errorf("calls after TTL = %d, want 4", next.calls)
	}
}

func TestDirectory_ErrorsNotCached(t *testing.T) {
	next := &countingDir{fail: true}
	d := New(next, time.Minute, 10)
	for i := 0; i < 2; i++ {
		if _, err := d.AccountByRealm(context.Background(), "r"); err == nil {
			t.Fatal("error swallowed")
		}
	}
	if next.calls != 2 {
		t.Errorf("calls = %d, want 2", next.calls)
	}
}

func TestDirectory_Bounded(t *testing.T) {
	next := &countingDir{}
	d := New(next, time.Minute, 3)
	for i := 0; i < 10; i++ {
		_, _ = d.Client(context.Background(), "a", string(rune('a'+i)))
	}
	if n := len(d.clients); n > 3 {
		t.Errorf("holds %d clients, limit 3", n)
	}
}

// Expired entries go away within about one TTL even when the map is far from its
// limit (many distinct users, each seen once).
func TestDirectory_ExpiredEntriesSwept(t *testing.T) {
	next := &countingDir{}
	d := New(next, 5*time.Second, 100_000)
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }
	for i := 0; i < 100; i++ {
		_, _ = d.Client(context.Background(), "a", fmt.Sprint("user", i))
		_, _ = d.AccountByRealm(context.Background(), fmt.Sprint("realm", i))
	}
	now = now.Add(11 * time.Second)
	_, _ = d.Client(context.Background(), "a", "late")
	if n := len(d.clients); n != 1 {
		t.Errorf("holds %d clients after two TTLs, want 1 (the fresh one)", n)
	}
	if n := len(d.accounts); n != 0 {
		t.Errorf("holds %d accounts after two TTLs, want 0", n)
	}
}

type downDir struct {
	countingDir
	down bool
}

func (d *downDir) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	if d.down {
		return nil, &breaker.UnavailableError{Backend: "mysql", Cause: errors.New("connection refused")}
	}
	return d.countingDir.AccountByRealm(ctx, realm)
}

func TestDirectory_StaleServedOnlyWhileUnavailable(t *testing.T) {
	now := time.Unix(1000, 0)
	next := &downDir{}
	d := New(next, 5*time.Second, 10).WithStale(time.Minute)
	d.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := d.AccountByRealm(ctx, "known"); err != nil {
		t.Fatal(err)
	}
	next.down = true
	now = now.Add(30 * time.Second) // expired, within the stale time
	if a, err := d.AccountByRealm(ctx, "known"); err != nil || a == nil || a.SID != "a" {
		t.Fatalf("known realm while down = %v, %v; want the stale account", a, err)
	}
	if _, err := d.AccountByRealm(ctx, "unknown"); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("uncached realm while down = %v, want ErrUnavailable", err)
	}
	now = now.Add(time.Minute) // beyond the stale time
	if _, err := d.AccountByRealm(ctx, "known"); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("known realm beyond the stale time = %v, want ErrUnavailable", err)
	}
}

func TestDirectory_StaleNotServedForOtherErrors(t *testing.T) {
	now := time.Unix(1000, 0)
	next := &countingDir{}
	d := New(next, 5*time.Second, 10).WithStale(time.Minute)
	d.now = func() time.Time { return now }
	ctx := context.Background()
	_, _ = d.AccountByRealm(ctx, "r")
	next.fail = true // an answer of the database, not an outage
	now = now.Add(10 * time.Second)
	if _, err := d.AccountByRealm(ctx, "r"); err == nil {
		t.Fatal("stale entry served for a non-outage error")
	}
}

type oneClient struct {
	countingDir
	c *registrar.Client
}

func (o *oneClient) Client(context.Context, string, string) (*registrar.Client, error) {
	o.calls++
	if o.c == nil {
		return nil, nil
	}
	c := *o.c
	return &c, nil
}

// A cached client reads back exactly as the directory answered it, for
// every combination of flags, and each caller gets a Client of its own.
func TestDirectory_ClientKeptExactly(t *testing.T) {
	ctx := context.Background()
	for bits := range 16 {
		want := &registrar.Client{Username: fmt.Sprint("user", bits), Password: `{"iv":"00","content":"ff"}`,
			Active: bits&1 != 0, AllowDirectAppCalling: bits&2 != 0, AllowDirectQueueCalling: bits&4 != 0, AllowDirectUserCalling: bits&8 != 0}
		next := &oneClient{c: want}
		d := New(next, time.Minute, 10)
		for i := range 2 {
			got, err := d.Client(ctx, "acct", want.Username)
			if err != nil || got == nil || *got != *want {
				t.Fatalf("flags %04b, lookup %d: %+v %v, want %+v", bits, i, got, err, want)
			}
			got.Password = "changed by a caller"
		}
		if next.calls != 1 {
			t.Errorf("flags %04b: %d directory calls, want 1", bits, next.calls)
		}
	}
	// Unknown (nil) is cached as unknown, with an empty username or password too.
	for _, c := range []*registrar.Client{nil, {}} {
		next := &oneClient{c: c}
		d := New(next, time.Minute, 10)
		for range 2 {
			got, err := d.Client(ctx, "acct", "u")
			if err != nil || (got == nil) != (c == nil) || (got != nil && *got != *c) {
				t.Fatalf("client %+v read back as %+v %v", c, got, err)
			}
		}
		if next.calls != 1 {
			t.Errorf("client %+v: %d directory calls, want 1", c, next.calls)
		}
	}
}

// A cached client's key shares the client's username when spelled the same
// and is a copy otherwise: never the caller's string (a request's memory).
func TestKeepClientKey_NoCallerMemory(t *testing.T) {
	c := packClient(&registrar.Client{Username: "alice", Password: "secret"})
	request := "Authorization: Digest username=alice"
	user := request[len(request)-5:]
	k := keepClientKey(clientKey{"acct", user}, c)
	if k.user != "alice" || unsafe.StringData(k.user) != unsafe.StringData(c.s) {
		t.Errorf("same spelling: key user %q does not share the client's memory", k.user)
	}
	c = packClient(&registrar.Client{Username: "Alice", Password: "secret"}) // a case-insensitive match in MySQL
	k = keepClientKey(clientKey{"acct", user}, c)
	if k.user != "alice" || unsafe.StringData(k.user) == unsafe.StringData(user) {
		t.Errorf("other spelling: key user %q is the caller's string", k.user)
	}
	k = keepClientKey(clientKey{"acct", user}, packClient(nil)) // unknown client
	if k.user != "alice" || unsafe.StringData(k.user) == unsafe.StringData(user) {
		t.Errorf("unknown client: key user %q is the caller's string", k.user)
	}
}
