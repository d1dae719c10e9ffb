package registrar_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// recPublisher records events.
type recPublisher struct {
	mu  sync.Mutex
	got []events.Event
}

func (p *recPublisher) Publish(e events.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, e)
}

func (p *recPublisher) take() []events.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.got
	p.got = nil
	return out
}

func withEvents() (*env, *recPublisher) {
	e := newEnv()
	p := &recPublisher{}
	e.pub = p
	return e, p
}

// one returns the single event recorded, failing otherwise.
func one(t *testing.T, p *recPublisher, want events.Type) events.Event {
	t.Helper()
	got := p.take()
	if len(got) != 1 || got[0].Type != want {
		t.Fatalf("events = %+v, want one %s", got, want)
	}
	return got[0]
}

func TestEvents_RegisterRefreshUnregister(t *testing.T) {
	e, p := withEvents()
	e.clients.grant.Expires = 300
	expect(t, e.authorized(t, set("User-Agent", "phone/1.0")), 200, nil)
	ev := one(t, p, events.Register)
	want := events.Event{Type: events.Register, Time: events.Millis(testNow), AoR: "john@jambonz.org", Realm: "jambonz.org",
		AccountSID: "acct-1", Contact: "sip:john@127.0.0.1:5090", Source: phoneSource, Transport: "udp",
		SBCAddress: sbcAddress, UserAgent: "phone/1.0", Expires: 300, CallID: "call-1@127.0.0.1",
		BindingExpiry: testNow.Add(300 * time.Second).UnixMilli()}
	if ev != want {
		t.Fatalf("register event\n got %+v\nwant %+v", ev, want)
	}

	// Answered from the stored binding: a refresh that wrote nothing.
	expect(t, e.serve(t, register(t, set("CSeq", "3 REGISTER"))), 200, nil)
	ev = one(t, p, events.Refresh)
	if ev.BindingExpiry != 0 || ev.Expires != 300 {
		t.Fatalf("cached refresh: expires %d, binding expiry %d; want 300, 0", ev.Expires, ev.BindingExpiry)
	}

	// Same Contact and source through authentication: a refresh that rewrote it.
	e.store.put("john@jambonz.org", phoneSource, 10*time.Second)
	expect(t, e.authorized(t, set("Call-ID", "call-2")), 200, nil)
	if ev = one(t, p, events.Refresh); ev.BindingExpiry == 0 {
		t.Fatal("refresh through bind has no binding expiry")
	}

	// Another Contact: a register.
	expect(t, e.authorized(t, set("Call-ID", "call-3"), contact("<sip:john@10.0.0.1:5090>")), 200, nil)
	one(t, p, events.Register)

	expect(t, e.authorized(t, set("Call-ID", "call-4"), expiresHeader("0")), 200, nil)
	if ev = one(t, p, events.Unregister); ev.Expires != 0 || ev.BindingExpiry != 0 {
		t.Fatalf("unregister event %+v", ev)
	}
}

func TestEvents_AuthFailedCarriesNoSecret(t *testing.T) {
	e, p := withEvents()
	e.clients.grant = registrar.Grant{Status: 200, OK: false}
	expect(t, e.authorizedWith(t, "s3cret-pw"), 403, nil)
	ev := one(t, p, events.AuthFailed)
	if ev.Reason != registrar.ReasonBadCredentials || ev.AoR != "john@jambonz.org" || ev.Expires != 3600 {
		t.Fatalf("auth-failed event %+v", ev)
	}
	raw, _ := json.Marshal(ev)
	for _, secret := range []string{"s3cret-pw", "response", "nonce", "Digest"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("event carries %q: %s", secret, raw)
		}
	}
}

func TestEvents_Rejected(t *testing.T) {
	t.Run("user mismatch", func(t *testing.T) {
		e, p := withEvents()
		expect(t, e.authorized(t, set("To", "<sip:jane@jambonz.org>"), set("From", "<sip:jane@jambonz.org>;tag=x")), 403, nil)
		if ev := one(t, p, events.Rejected); ev.Reason != registrar.ReasonUserMismatch || ev.AoR != "jane@jambonz.org" {
			t.Fatalf("event %+v", ev)
		}
	})
	t.Run("device limit", func(t *testing.T) {
		e, p := withEvents()
		e.hosting = true
		e.store.counts = map[string]int{"jambonz.org": 0}
		expect(t, e.serve(t, register(t)), 503, nil)
		if ev := one(t, p, events.Rejected); ev.Reason != registrar.ReasonMaxDevices {
			t.Fatalf("event %+v", ev)
		}
	})
	t.Run("deactivated account", func(t *testing.T) {
		e, p := withEvents()
		e.dir.accounts["jambonz.org"].Active = false
		expect(t, e.serve(t, register(t)), 403, nil)
		if ev := one(t, p, events.Rejected); ev.Reason != registrar.ReasonDeactivated || ev.AccountSID != "acct-1" {
			t.Fatalf("event %+v", ev)
		}
	})
}

func TestEvents_NoneForChallengesAndMalformedRequests(t *testing.T) {
	e, p := withEvents()
	expect(t, e.serve(t, register(t)), 401, nil)
	expect(t, e.serve(t, register(t, set("Contact", ""))), 400, nil)
	expect(t, e.serve(t, register(t, ruri("sip:10.0.0.1"))), 403, nil)
	if got := p.take(); len(got) != 0 {
		t.Fatalf("events = %+v, want none", got)
	}
}

// eventStore is the env's store offering registrar.EventStore: it records
// the events handed to it.
type eventStore struct {
	registrar.Store
	carried []*events.Inline
}

func (s *eventStore) BindWith(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration, ev *events.Inline) error {
	s.carried = append(s.carried, ev)
	return s.Bind(ctx, aor, b, ttl)
}

func (s *eventStore) UnbindWith(ctx context.Context, aor string, ev *events.Inline) error {
	s.carried = append(s.carried, ev)
	return s.Unbind(ctx, aor)
}

// inlinePublisher records the events prepared to ride on a binding write
// and those sent that way, besides those published through the queue.
type inlinePublisher struct {
	recPublisher
	inlined []events.Event
	sent    []*events.Inline
}

func (p *inlinePublisher) Inline(e events.Event) *events.Inline {
	p.inlined = append(p.inlined, e)
	return &events.Inline{Publish: []byte(e.Type)}
}

func (p *inlinePublisher) Sent(in *events.Inline) { p.sent = append(p.sent, in) }

// With a store that can carry them, the events of binding writes ride on
// the write (the same events as through the queue); the others (a cached
// refresh, auth-failed) still go through Publish.
func TestEvents_CarriedByTheBindingWrite(t *testing.T) {
	e := newEnv()
	p := &inlinePublisher{}
	st := &eventStore{Store: e.store}
	e.pub, e.st = p, st
	e.clients.grant.Expires = 300
	expect(t, e.authorized(t, set("User-Agent", "phone/1.0")), 200, nil)
	want := events.Event{Type: events.Register, Time: events.Millis(testNow), AoR: "john@jambonz.org", Realm: "jambonz.org",
		AccountSID: "acct-1", Contact: "sip:john@127.0.0.1:5090", Source: phoneSource, Transport: "udp",
		SBCAddress: sbcAddress, UserAgent: "phone/1.0", Expires: 300, CallID: "call-1@127.0.0.1",
		BindingExpiry: testNow.Add(300 * time.Second).UnixMilli()}
	if len(p.inlined) != 1 || p.inlined[0] != want {
		t.Fatalf("carried events %+v\nwant [%+v]", p.inlined, want)
	}
	if len(st.carried) != 1 || len(p.sent) != 1 || p.sent[0] != st.carried[0] {
		t.Fatalf("store carried %d, sent %d: want the same one", len(st.carried), len(p.sent))
	}
	if got := p.take(); len(got) != 0 {
		t.Fatalf("also queued: %+v", got)
	}

	// Answered from the stored binding: no write to ride on.
	expect(t, e.serve(t, register(t, set("CSeq", "3 REGISTER"))), 200, nil)
	one(t, &p.recPublisher, events.Refresh)

	expect(t, e.authorized(t, set("Call-ID", "call-4"), expiresHeader("0")), 200, nil)
	if len(p.inlined) != 2 || p.inlined[1].Type != events.Unregister || p.inlined[1].Expires != 0 || p.inlined[1].BindingExpiry != 0 {
		t.Fatalf("carried events %+v", p.inlined)
	}
	if len(p.sent) != 2 || len(p.take()) != 0 {
		t.Fatalf("sent %d, want 2, none queued", len(p.sent))
	}
}
