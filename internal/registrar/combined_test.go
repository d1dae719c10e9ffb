package registrar_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// keyedBans is a guard.Bans whose bans are keys (as store.Bans): it
// records which keys the guard read itself.
type keyedBans struct {
	mu     sync.Mutex
	banned map[string]bool
	reads  []string
}

func (b *keyedBans) BanKey(key string) string { return "ban:" + key }

func (b *keyedBans) Banned(_ context.Context, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, key)
	return b.banned[b.BanKey(key)], nil
}

func (b *keyedBans) Ban(_ context.Context, key string, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.banned[b.BanKey(key)] = true
	return nil
}

func (b *keyedBans) Failure(context.Context, string, time.Duration) (int, error) { return 1, nil }

func (b *keyedBans) aorReads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, k := range b.reads {
		if strings.HasPrefix(k, "aor:") {
			n++
		}
	}
	return n
}

// combinedStore is a memStore whose lookup also reads a ban key and makes
// a claim (as redisstore's pipelined GET, EXISTS and SET NX). Its claims
// are the ones sharedClaims makes too: one key space, as in Redis.
type combinedStore struct {
	*memStore
	bans     *keyedBans
	claims   *sharedClaims
	combined []string // ban keys read with a binding
	carried  []string // claim keys made with a binding
	fail     bool     // the round trip fails
}

func (s *combinedStore) Lookup(ctx context.Context, l registrar.Lookup) (registrar.Looked, error) {
	if s.fail {
		return registrar.Looked{}, errors.New("round trip failed")
	}
	var res registrar.Looked
	if l.BanKey != "" {
		s.combined = append(s.combined, l.BanKey)
		s.bans.mu.Lock()
		res.Banned = s.bans.banned[l.BanKey]
		s.bans.mu.Unlock()
	}
	if l.ClaimKey != "" {
		s.carried = append(s.carried, l.ClaimKey)
		res.Claimed = s.claims.set(l.ClaimKey, l.ClaimTTL)
	}
	b, err := s.Binding(ctx, l.AoR)
	res.Binding = b
	return res, err
}

// sharedClaims is nonce.SharedClaims over one key space; it counts its
// own SetNX calls (claims not carried by a lookup).
type sharedClaims struct {
	mu    sync.Mutex
	keys  map[string]time.Duration
	setNX int
}

func (c *sharedClaims) set(key string, ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[key]; ok {
		return false
	}
	c.keys[key] = ttl
	return true
}

func (c *sharedClaims) SetNX(_ context.Context, key, _ string, ttl time.Duration) (bool, error) {
	c.mu.Lock()
	c.setNX++
	c.mu.Unlock()
	return c.set(key, ttl), nil
}

func combinedEnv(t *testing.T) (*env, *combinedStore, *keyedBans) {
	t.Helper()
	e := newEnv()
	bans := &keyedBans{banned: map[string]bool{}}
	cs := &combinedStore{memStore: e.store, bans: bans, claims: &sharedClaims{keys: map[string]time.Duration{}}}
	g := guard.New(guard.Config{FailuresPerIP: 100, FailuresAoR: 5, Window: time.Minute}, bans, quietLog())
	e.reg = registrar.New(registrar.Deps{
		Guard: g, Store: cs, Directory: e.dir, Webhook: e.webhook, Clients: e.clients,
		Alerter: e.alerts, Log: quietLog(), Now: e.now(),
	})
	return e, cs, bans
}

// The authenticated REGISTER reads its AoR's ban with the binding, and the
// guard does not read it again; the unauthenticated one reads no ban.
func TestRegister_AoRBanReadWithBinding(t *testing.T) {
	e, cs, bans := combinedEnv(t)
	res := e.authorized(t)
	expect(t, res, 200, nil)
	if len(cs.combined) != 1 || cs.combined[0] != "ban:aor:john@jambonz.org" {
		t.Fatalf("combined lookups %v, want one of ban:aor:john@jambonz.org (by the authenticated REGISTER)", cs.combined)
	}
	if n := bans.aorReads(); n != 0 {
		t.Fatalf("guard read the AoR ban itself %d times, want 0", n)
	}
	if cs.lookups != 2 {
		t.Fatalf("%d binding lookups for two REGISTERs, want 2", cs.lookups)
	}
}

// A ban read with the binding refuses as the guard's own read does.
func TestRegister_AoRBanReadWithBindingRefuses(t *testing.T) {
	e, cs, bans := combinedEnv(t)
	bans.banned["ban:aor:john@jambonz.org"] = true
	res := e.authorized(t)
	expect(t, res, 403, map[string]string{"X-Reason": "Too many failed authentications"})
	if len(cs.combined) != 1 {
		t.Fatalf("combined lookups %v, want 1", cs.combined)
	}
	if e.authCalls() != 0 {
		t.Fatalf("%d authenticator calls for a banned AoR", e.authCalls())
	}
	if e.store.binds != 0 {
		t.Fatal("banned AoR bound")
	}
}

// sharedEnv is combinedEnv with nonces shared through the store's key
// space (NONCE_SECRET with Redis); instance builds another registrar on
// the same store and secret (a second SBC).
func sharedEnv(t *testing.T) (*env, *combinedStore, func() *registrar.Registrar) {
	t.Helper()
	e, cs, bans := combinedEnv(t)
	instance := func() *registrar.Registrar {
		n := nonce.New("cluster-secret", 5*time.Minute, 0)
		n.Share(cs.claims, "c:")
		return registrar.New(registrar.Deps{
			Guard:  guard.New(guard.Config{FailuresPerIP: 100, FailuresAoR: 5, Window: time.Minute}, bans, quietLog()),
			Nonces: n, Store: cs, Directory: e.dir, Webhook: e.webhook, Clients: e.clients,
			Alerter: e.alerts, Log: quietLog(), Now: e.now(),
		})
	}
	e.reg = instance()
	return e, cs, instance
}

// The cluster-wide nonce claim rides on the authenticated REGISTER's
// binding lookup: no SET NX of its own.
func TestRegister_NonceClaimRidesOnLookup(t *testing.T) {
	e, cs, _ := sharedEnv(t)
	expect(t, e.authorized(t), 200, nil)
	if len(cs.carried) != 1 || !strings.HasPrefix(cs.carried[0], "c:nonce:") {
		t.Fatalf("claims carried by lookups %v, want one c:nonce:* key", cs.carried)
	}
	if cs.claims.setNX != 0 {
		t.Fatalf("%d claims made in a round trip of their own, want 0", cs.claims.setNX)
	}
	if ttl := cs.claims.keys[cs.carried[0]]; ttl != 5*time.Minute+time.Minute {
		t.Errorf("claim lifetime %v, want NONCE_TTL + 1 min of clock skew", ttl)
	}
}

// A copy of the Authorization sent to another instance finds the count
// claimed in the lookup's answer: 401 Nonce count reused, no
// authentication, nothing bound.
func TestRegister_CarriedClaimRefusesCopyOnAnotherInstance(t *testing.T) {
	e, cs, instance := sharedEnv(t)
	first := e.serve(t, register(t, set("Authorization", "")))
	nonceValue := nonceRE.FindStringSubmatch(first.Get("WWW-Authenticate"))[1]
	authz := set("Authorization", authorizationFor("jambonz.org", nonceValue, "00000001", "1234"))
	expect(t, e.serve(t, register(t, set("CSeq", "2 REGISTER"), authz)), 200, nil)
	calls, binds := e.authCalls(), cs.binds
	e.reg = instance()
	res := e.serve(t, register(t, set("CSeq", "3 REGISTER"), set("Contact", "<sip:mallory@192.0.2.66:5060>"), authz))
	expect(t, res, 401, map[string]string{"X-Reason": "Nonce count reused"})
	if e.authCalls() != calls || cs.binds != binds {
		t.Fatalf("the copy reached authentication (%d calls) or bound (%d binds)", e.authCalls()-calls, cs.binds-binds)
	}
	if len(cs.carried) != 2 || cs.carried[0] != cs.carried[1] {
		t.Fatalf("claims carried %v, want the same key twice", cs.carried)
	}
}

// When the lookup's round trip fails, the claim is made on its own before
// authentication, as without the combined lookup.
func TestRegister_ClaimMadeAloneWhenLookupFails(t *testing.T) {
	e, cs, _ := sharedEnv(t)
	cs.fail = true
	expect(t, e.authorized(t), 200, nil)
	if cs.claims.setNX != 1 || len(cs.claims.keys) != 1 {
		t.Fatalf("claims on their own %d, keys %v; want one", cs.claims.setNX, cs.claims.keys)
	}
}

// The count is claimed before the account is looked up: a REGISTER refused
// there (here: a deactivated account) still uses its count up, and the next
// attempt with it gets a fresh challenge once the account is back.
func TestRegister_CountUsedUpByEarlyRefusal(t *testing.T) {
	e, cs, _ := sharedEnv(t)
	first := e.serve(t, register(t, set("Authorization", "")))
	nonceValue := nonceRE.FindStringSubmatch(first.Get("WWW-Authenticate"))[1]
	authz := set("Authorization", authorizationFor("jambonz.org", nonceValue, "00000001", "1234"))
	e.dir.accounts["jambonz.org"].Active = false
	expect(t, e.serve(t, register(t, set("CSeq", "2 REGISTER"), authz)), 403, map[string]string{"X-Reason": registrar.ReasonDeactivated})
	e.dir.accounts["jambonz.org"].Active = true
	expect(t, e.serve(t, register(t, set("CSeq", "3 REGISTER"), authz)), 401, map[string]string{"X-Reason": "Nonce count reused"})
	// This instance remembers the count: the second attempt carries no claim.
	if len(cs.carried) != 1 {
		t.Fatalf("claims carried %v, want 1", cs.carried)
	}
}
