package dircache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// countingDir is an in-memory directory that counts account lookups.
type countingDir struct {
	accounts map[string]*registrar.Account
	err      error
	lookups  int
}

func (d *countingDir) AccountByRealm(_ context.Context, realm string) (*registrar.Account, error) {
	d.lookups++
	if d.err != nil {
		return nil, d.err
	}
	return d.accounts[realm], nil
}

func (d *countingDir) Capacities(context.Context, string) (registrar.Capacities, error) {
	return registrar.Capacities{}, nil
}

func (d *countingDir) Client(context.Context, string, string) (*registrar.Client, error) {
	return nil, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAccountByRealm(t *testing.T) {
	acct := &registrar.Account{SID: "a1", Realm: "example.com", Active: true}
	tests := []struct {
		name        string
		realm       string
		err         error
		advance     time.Duration // between the two lookups
		wantLookups int
		wantAcct    *registrar.Account
	}{
		{name: "second lookup within the TTL is answered from the cache", realm: "example.com", advance: 500 * time.Millisecond, wantLookups: 1, wantAcct: acct},
		{name: "lookup after the TTL goes to the directory again", realm: "example.com", advance: time.Second, wantLookups: 2, wantAcct: acct},
		{name: "unknown realm is cached as unknown", realm: "nope.example.com", advance: 10 * time.Millisecond, wantLookups: 1},
		{name: "errors are not cached", realm: "example.com", err: errors.New("mysql down"), advance: 10 * time.Millisecond, wantLookups: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &countingDir{accounts: map[string]*registrar.Account{"example.com": acct}, err: tt.err}
			c := &clock{t: time.Unix(1000, 0)}
			cache := New(d, time.Second, c.now)
			for i := 0; i < 2; i++ {
				got, err := cache.AccountByRealm(context.Background(), tt.realm)
				if tt.err != nil {
					if !errors.Is(err, tt.err) {
						t.Fatalf("err = %v, want %v", err, tt.err)
					}
				} else if err != nil || got != tt.wantAcct {
					t.Fatalf("lookup %d = %v, %v; want %v", i, got, err, tt.wantAcct)
				}
				c.t = c.t.Add(tt.advance)
			}
			if d.lookups != tt.wantLookups {
				t.Fatalf("directory lookups = %d, want %d", d.lookups, tt.wantLookups)
			}
		})
	}
}

func TestAccountByRealm_BoundedEntries(t *testing.T) {
	d := &countingDir{accounts: map[string]*registrar.Account{}}
	cache := New(d, time.Minute, nil)
	for i := 0; i < maxEntries+10; i++ {
		if _, err := cache.AccountByRealm(context.Background(), "r"+string(rune('a'+i%26))+time.Duration(i).String()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(cache.entries); n > maxEntries {
		t.Fatalf("entries = %d, want at most %d", n, maxEntries)
	}
}
