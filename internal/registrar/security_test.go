package registrar_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// challengeNonce asks for a challenge and returns its nonce.
func (e *env) challengeNonce(t *testing.T, opts ...opt) string {
	t.Helper()
	res := e.serve(t, register(t, append(opts, set("Authorization", ""))...))
	m := nonceRE.FindStringSubmatch(res.Get("WWW-Authenticate"))
	if res.Code != 401 || m == nil {
		t.Fatalf("no challenge: %d %v", res.Code, res.Headers)
	}
	return m[1]
}

// copyFrom is the attacker's REGISTER carrying a captured Authorization:
// another source, Call-ID and Contact.
func copyFrom(i int, authz string) []opt {
	src := fmt.Sprintf("127.0.0.%d:6%03d", 100+i, i)
	return []opt{from(src), set("Call-ID", fmt.Sprintf("attack-%d", i)),
		contact(fmt.Sprintf("<sip:john@%s>", src)), set("CSeq", "2 REGISTER"), set("Authorization", authz)}
}

// Issue 13 item 2: copies of an Authorization sent while the original is at
// the webhook are refused; the legitimate Contact is bound.
func TestRegister_ReplayWhileOriginalAtWebhook(t *testing.T) {
	e := newEnv()
	e.clients.gate, e.clients.entered = make(chan struct{}), make(chan struct{})
	authz := sippAuthorization(e.challengeNonce(t), "1234")

	legit := make(chan *sipfront.Response, 1)
	go func() {
		w := &recWriter{}
		e.registrar().ServeSIP(context.Background(), w, register(t, set("CSeq", "2 REGISTER"), set("Authorization", authz)))
		legit <- w.res[0]
	}()
	<-e.clients.entered // the original is at the webhook
	for i := range 5 {
		res := e.serve(t, register(t, copyFrom(i, authz)...))
		expect(t, res, 401, map[string]string{"X-Reason": "Nonce count reused"})
	}
	close(e.clients.gate)
	expect(t, <-legit, 200, nil)
	if n := e.clients.count(); n != 1 {
		t.Errorf("authenticator calls = %d, want 1 (copies must not reach it)", n)
	}
	if got := e.store.bindings["john@jambonz.org"].Contact; got != "sip:john@127.0.0.1:5090" {
		t.Errorf("bound contact = %q, want the legitimate one", got)
	}
}

// Concurrent copies with nothing in front: exactly one is served.
func TestRegister_ConcurrentCopiesExactlyOneServed(t *testing.T) {
	e := newEnv()
	authz := sippAuthorization(e.challengeNonce(t), "1234")
	e.registrar()
	const copies = 16
	codes := make([]int, copies)
	var wg sync.WaitGroup
	for i := range copies {
		req := register(t, copyFrom(i, authz)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &recWriter{}
			e.reg.ServeSIP(context.Background(), w, req)
			codes[i] = w.res[0].Code
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == 200 {
			ok++
		} else if c != 401 {
			t.Errorf("copy answered %d, want 200 or 401", c)
		}
	}
	if ok != 1 || e.clients.count() != 1 {
		t.Fatalf("%d answered 200 and %d authenticated, want exactly 1 (codes %v)", ok, e.clients.count(), codes)
	}
}

// A failed authentication consumes its nonce count too.
func TestRegister_ClaimedCountStaysUsedAfterRefusal(t *testing.T) {
	e := newEnv()
	e.clients.grant = registrar.Grant{Status: 200, Msg: "bad password"}
	authz := sippAuthorization(e.challengeNonce(t), "1234")
	expect(t, e.serve(t, register(t, set("CSeq", "2 REGISTER"), set("Authorization", authz))), 403, nil)
	e.clients.grant = registrar.Grant{Status: 200, OK: true}
	expect(t, e.serve(t, register(t, set("CSeq", "3 REGISTER"), set("Authorization", authz))), 401,
		map[string]string{"X-Reason": "Nonce count reused"})
	if e.clients.count() != 1 {
		t.Fatalf("authenticator calls = %d, want 1", e.clients.count())
	}
}

type failingClaims struct{}

func (failingClaims) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, errors.New("redis down")
}

// When the cluster-wide claim cannot be made the request is not served.
func TestRegister_SharedClaimStoreDown(t *testing.T) {
	e := newEnv()
	iss := nonce.New("cluster", time.Minute, 0)
	iss.Share(failingClaims{}, "default:")
	e.nonces = iss
	res := e.authorized(t)
	expect(t, res, 503, map[string]string{"Retry-After": "30"})
	if e.authCalls() != 0 {
		t.Fatal("authenticated without a claim")
	}
}

// Issue 13 item 3: the digest realm must be the one challenged (the To host).
func TestRegister_CredentialsOfAnotherRealmRefused(t *testing.T) {
	for _, realm := range []string{"other.org", "evil.jambonz.org", "JAMBONZ.ORG", "Jambonz.org", "jambonz.org.", "org"} {
		t.Run(realm, func(t *testing.T) {
			e := newEnv()
			e.guard = &recGuard{}
			n := e.challengeNonce(t)
			res := e.serve(t, register(t, set("CSeq", "2 REGISTER"), set("Authorization", authorizationFor(realm, n, "00000001", "1234"))))
			expect(t, res, 403, map[string]string{"X-Reason": registrar.ReasonRealmMismatch})
			if e.authCalls() != 0 || len(e.store.bindings) != 0 {
				t.Fatal("credentials of another realm reached the authenticator")
			}
			if got := e.guard.failed(); len(got) != 1 || got[0] != "127.0.0.1 john@jambonz.org" {
				t.Errorf("failures counted = %q, want one for the source and AoR", got)
			}
		})
	}
}

// The challenge realm is the To host, and the authenticator receives it.
func TestRegister_AuthenticatorGetsTheChallengedRealm(t *testing.T) {
	e := newEnv()
	expect(t, e.authorized(t, toHost("sub.jambonz.org")), 200, nil)
	if got := e.clients.calls[0].Creds.Realm; got != "sub.jambonz.org" {
		t.Errorf("realm = %q, want sub.jambonz.org", got)
	}
}

// Issue 13 item 5: only allow-listed headers of a webhook answer reach the
// SIP answer, compact names included.
func TestRegister_WebhookHeadersAllowList(t *testing.T) {
	e := newEnv()
	e.clients.grant = registrar.Grant{Status: 200, Headers: map[string]string{
		"l": "0", "v": "SIP/2.0/UDP 6.6.6.6", "i": "evil", "f": "<sip:x@evil>", "t": "<sip:y@evil>", "m": "<sip:evil>",
		"L": "0", "Content-Length": "0", "VIA": "SIP/2.0/UDP 6.6.6.6", "Record-Route": "<sip:evil;lr>",
		"Route": "<sip:evil>", "Contact": "<sip:evil>", "Content-Type": "text/plain", "c": "text/plain",
		"Server": "evil", "Max-Forwards": "1", "X": "1", "X-": "1",
		"X-Custom": "kept", "x-lower": "kept", "Reason": `SIP;cause=403;text="suspended"`, "Warning": `399 hook "no"`,
		"Retry-After": "60", "Error-Info": "<https://example.com/why>",
	}}
	res := e.authorized(t)
	expect(t, res, 403, nil)
	got := map[string]bool{}
	for _, h := range res.Headers {
		got[h.Name] = true
	}
	want := []string{"X-Reason", "X-Custom", "x-lower", "Reason", "Warning", "Retry-After", "Error-Info"}
	for _, name := range want {
		if !got[name] {
			t.Errorf("allowed header %s missing", name)
		}
	}
	if len(res.Headers) != len(want) {
		t.Errorf("headers %v, want only %v", res.Headers, want)
	}
}

// Webhook failures count against the source (a flood against a slow
// webhook gets banned), not against the AoR.
func TestRegister_WebhookFailuresCountTowardsBans(t *testing.T) {
	for _, status := range []int{503, 500, 404, 401} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv()
			e.guard = &recGuard{}
			e.clients.grant = registrar.Grant{Status: status}
			e.authorized(t)
			if got := e.guard.failed(); len(got) != 1 || strings.TrimSpace(got[0]) != "127.0.0.1" {
				t.Errorf("failures = %q, want one for the source only", got)
			}
		})
	}
}
