package cached

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
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
	if n := d.clients.len(); n > 3 {
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
	if n := d.clients.len(); n != 1 {
		t.Errorf("holds %d clients after two TTLs, want 1 (the fresh one)", n)
	}
	if n := len(d.accounts.m); n != 0 {
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

// A cached client's key and data are one string of the cache's own: never
// the caller's string (a request's memory).
func TestPackClient_NoCallerMemory(t *testing.T) {
	request := "Authorization: Digest username=alice"
	user := request[len(request)-5:]
	for _, c := range []*registrar.Client{
		{Username: "alice", Password: "secret"},
		{Username: "Alice", Password: "secret"}, // a case-insensitive match in MySQL
		nil,                                     // unknown client
	} {
		key, rest := packClient(7, user, c)
		if keyID(key) != 7 || key[idLen:] != "alice" {
			t.Errorf("client %+v: key %q", c, key)
		}
		if unsafe.Add(unsafe.Pointer(unsafe.StringData(key)), len(key)) != unsafe.Pointer(unsafe.StringData(rest)) {
			t.Errorf("client %+v: key and rest are not one string", c)
		}
	}
	d := New(&countingDir{}, time.Minute, 10)
	sid := request[:5]
	_, _ = d.Client(context.Background(), sid, user)
	for k := range d.clients.ids {
		if unsafe.StringData(k) == unsafe.StringData(sid) {
			t.Error("the account's SID is the caller's string")
		}
	}
}

// Account ids are reused once an account has no cached client left, and a
// reused id never answers for the account that had it before.
func TestDirectory_AccountIDsReused(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	next := &countingDir{}
	d := New(next, 5*time.Second, 100)
	d.now = func() time.Time { return now }
	_, _ = d.Client(ctx, "A", "u") // id 0
	now = now.Add(3 * time.Second)
	_, _ = d.Client(ctx, "C", "u") // id 1, still cached below
	now = now.Add(3 * time.Second)
	_, _ = d.Client(ctx, "B", "u") // sweeps A's client: B gets A's id
	if len(d.clients.ids) != 2 || d.clients.ids["B"] != 0 || d.clients.ids["C"] != 1 {
		t.Fatalf("ids %v; want B with id 0, C with id 1", d.clients.ids)
	}
	calls := next.calls
	_, _ = d.Client(ctx, "B", "u")
	if next.calls != calls {
		t.Error("B's client not answered from the cache")
	}
	_, _ = d.Client(ctx, "A", "u")
	if next.calls != calls+1 {
		t.Error("A's client answered from B's entry")
	}
	if d.clients.ids["A"] != 2 || len(d.clients.accounts) != 3 || len(d.clients.free) != 0 {
		t.Errorf("ids %v, accounts %v, free %v", d.clients.ids, d.clients.accounts, d.clients.free)
	}
	for id, a := range d.clients.accounts {
		if a.clients != 1 {
			t.Errorf("account %d (%s) counts %d clients, want 1", id, a.sid, a.clients)
		}
	}
}

// The directory's spelling of a username (MySQL matches case-insensitively)
// is what a cached lookup returns, under the spelling it was looked up with.
func TestDirectory_ClientSpelledOtherwise(t *testing.T) {
	ctx := context.Background()
	next := &oneClient{c: &registrar.Client{Username: "alice", Password: "p", Active: true}}
	d := New(next, time.Minute, 10)
	for range 2 {
		got, err := d.Client(ctx, "acct", "ALICE")
		if err != nil || got == nil || got.Username != "alice" || got.Password != "p" || !got.Active {
			t.Fatalf("Client(ALICE) = %+v, %v", got, err)
		}
	}
	if next.calls != 1 {
		t.Errorf("%d directory calls, want 1", next.calls)
	}
}

// Encrypted passwords are held packed and read back as the same string;
// anything not written exactly as the api-server writes them is held as is.
func TestPackPassword_SameString(t *testing.T) {
	c, err := credcrypt.New("cached-test-secret", false)
	if err != nil {
		t.Fatal(err)
	}
	sealed := []string{`{"iv":"00112233445566778899aabbccddeeff","content":""}`}
	for _, plain := range []string{"", "x", "pw000001x", "0123456789abcdef", strings.Repeat("long password ", 20)} {
		v, err := c.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, v)
	}
	asIs := []string{
		"", "plain-secret", "{", `{"iv":"`, `{}`,
		`{"iv":"00112233445566778899AABBCCDDEEFF","content":"ab"}`,  // upper-case digits
		`{"iv":"00112233445566778899aabbccddeeff","content":"abc"}`, // odd digits
		`{"iv":"00112233445566778899aabbccddee","content":"ab"}`,    // short iv
		`{"iv":"00112233445566778899aabbccddeeff", "content":"ab"}`, // a space
		`{"iv":"00112233445566778899aabbccddeeff","content":"ab"} `,
		` {"iv":"00112233445566778899aabbccddeeff","content":"ab"}`,
		`{"content":"ab","iv":"00112233445566778899aabbccddeeff"}`,
		`{"iv":"00112233445566778899aabbccddeeff","content":"ag"}`,
		`{"iv":"00112233445566778899aabbccddeeff","content":"ab","x":1}`,
	}
	for _, pw := range append(sealed, asIs...) {
		want := &registrar.Client{Username: "u", Password: pw, Active: true}
		_, rest := packClient(0, "u", want)
		got := clientEntry{rest: rest}.unpack("u")
		if got == nil || *got != *want {
			t.Errorf("password %q read back as %+v", pw, got)
		}
		isSealed := clientFlags(rest[0])&clientSealed != 0
		if wantSealed := slices.Contains(sealed, pw); isSealed != wantSealed {
			t.Errorf("password %q: packed %v, want %v", pw, isSealed, wantSealed)
		} else if isSealed && len(rest) != 1+(len(pw)-len(sealedIV)-len(sealedContent)-len(sealedEnd))/2 {
			t.Errorf("password %q: packed in %d bytes", pw, len(rest)-1)
		}
	}
}

// Whatever the directory answers reads back exactly from the cache.
func FuzzPackClient(f *testing.F) {
	f.Add("alice", "alice", `{"iv":"00112233445566778899aabbccddeeff","content":"abcdef0123"}`, uint8(5))
	f.Add("ALICE", "alice", "plain", uint8(0))
	f.Add("", "", "", uint8(15))
	f.Add("bob", strings.Repeat("b", 300), `{"iv":"00112233445566778899aabbccddeeff","content":""}`, uint8(3))
	f.Fuzz(func(t *testing.T, user, name, password string, bits uint8) {
		want := &registrar.Client{Username: name, Password: password,
			Active: bits&1 != 0, AllowDirectAppCalling: bits&2 != 0, AllowDirectQueueCalling: bits&4 != 0, AllowDirectUserCalling: bits&8 != 0}
		key, rest := packClient(3, user, want)
		if keyID(key) != 3 || key[idLen:] != user {
			t.Fatalf("key %q, want account 3 and %q", key, user)
		}
		if got := (clientEntry{rest: rest}).unpack(user); got == nil || *got != *want {
			t.Fatalf("%+v read back as %+v", want, got)
		}
		key, rest = packClient(3, user, nil)
		if got := (clientEntry{rest: rest}).unpack(user); key[idLen:] != user || got != nil {
			t.Fatalf("unknown client read back as %+v under %q", got, key)
		}
	})
}

// After a burst the maps are rebuilt at the size of what is left, and an
// account without cached clients is forgotten.
func TestDirectory_SweepShrinksAfterBurst(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	d := New(&countingDir{}, 5*time.Second, 100_000)
	d.now = func() time.Time { return now }
	const burst = 4 * shrinkFrom
	for i := range burst {
		_, _ = d.Client(ctx, "a", fmt.Sprint("user", i))
		_, _ = d.Client(ctx, "b", fmt.Sprint("user", i))
		_, _ = d.AccountByRealm(ctx, fmt.Sprint("realm", i))
	}
	now = now.Add(3 * time.Second)
	for i := range 10 {
		_, _ = d.Client(ctx, "a", fmt.Sprint("late", i))
		_, _ = d.AccountByRealm(ctx, fmt.Sprint("late", i))
	}
	now = now.Add(3 * time.Second) // the burst expired, the late ones not
	_, _ = d.Capacities(ctx, "a")  // any lookup that loads sweeps
	if d.clients.len() != 10 || len(d.clients.ids) != 1 || d.clients.accounts[d.clients.ids["a"]].clients != 10 {
		t.Fatalf("%d clients in %d accounts, want the 10 late ones in account a", d.clients.len(), len(d.clients.ids))
	}
	if d.clients.peak != 10 {
		t.Errorf("clients map has peak %d after the sweep, want 10 (rebuilt)", d.clients.peak)
	}
	if len(d.accounts.m) != 10 || d.accounts.peak != 10 {
		t.Errorf("accounts: %d entries, peak %d; want 10 and 10 (rebuilt)", len(d.accounts.m), d.accounts.peak)
	}
}

// echoClients answers every lookup with a client whose password names the
// account and the username asked for.
type echoClients struct{ countingDir }

func (*echoClients) Client(_ context.Context, account, username string) (*registrar.Client, error) {
	return &registrar.Client{Username: username, Password: account + "/" + username, Active: true}, nil
}

// Under concurrent lookups, expiries, sweeps and reused account ids, every
// answer is the one for the account and username asked (run with -race).
func TestDirectory_ConcurrentLookupsKeepAccountsApart(t *testing.T) {
	d := New(&echoClients{}, time.Millisecond, 50).WithStale(time.Millisecond)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				account, user := fmt.Sprint("acct", (i*7+g)%13), fmt.Sprint("u", i%17)
				c, err := d.Client(ctx, account, user)
				if err != nil || c == nil || c.Username != user || c.Password != account+"/"+user {
					t.Errorf("Client(%s, %s) = %+v, %v", account, user, c, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Realms and SIDs are kept as copies: a realm parsed from a request would
// otherwise keep its header's string for as long as the entry is kept.
func TestDirectory_KeysNoCallerMemory(t *testing.T) {
	d := New(&countingDir{}, time.Minute, 10)
	request := "To: <sip:alice@example.com>"
	realm := request[len(request)-12 : len(request)-1]
	_, _ = d.AccountByRealm(context.Background(), realm)
	_, _ = d.Capacities(context.Background(), realm)
	for name, m := range map[string][]string{"accounts": slices.Collect(maps.Keys(d.accounts.m)), "capacities": slices.Collect(maps.Keys(d.capacities.m))} {
		if len(m) != 1 || m[0] != "example.com" || unsafe.StringData(m[0]) == unsafe.StringData(realm) {
			t.Errorf("%s keys %q: want a copy of %q", name, m, realm)
		}
	}
}
