package localbus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/localbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// TestExpiryThroughTheEmbeddedStore: a binding written to the memstore
// lapses; the service's sweep claims it once, reports it with its
// register's details on the bus, and leaves the live binding.
func TestExpiryThroughTheEmbeddedStore(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	st, err := memstore.Open(memstore.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	short, long := now.Add(-time.Second).UnixMilli(), now.Add(time.Hour).UnixMilli()
	for aor, exp := range map[string]int64{"a@x.org": short, "b@x.org": long} {
		if err := st.Bind(ctx, aor, registrar.Binding{Contact: "sip:" + aor, ExpiryTime: exp}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	bus := &events.Bus{}
	svc := events.New(events.Options{Backend: &localbus.Backend{Bus: bus, Store: st}, SweepEvery: time.Hour,
		Now: func() time.Time { return now }})
	sub, _ := bus.Subscribe(ctx)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	svc.Publish(events.Event{Type: events.Register, AoR: "a@x.org", Realm: "x.org", AccountSID: "acct", Contact: "sip:a@x.org",
		Expires: 30, BindingExpiry: short})
	if e := decode(t, <-sub); e.Type != events.Register {
		t.Fatalf("first event %+v", e)
	}
	for range 2 { // the second sweep finds nothing more
		if n, err := svc.Count(ctx); err != nil || n != 1 {
			t.Fatalf("Count = %d, %v; want 1 (b@x.org)", n, err)
		}
	}
	e := decode(t, <-sub)
	if e.Type != events.Expire || e.AoR != "a@x.org" || e.AccountSID != "acct" || e.Expires != 30 {
		t.Fatalf("expire event %+v", e)
	}
	svc.Publish(events.Event{Type: events.Unregister, AoR: "marker@x.org"})
	if e := decode(t, <-sub); e.AoR != "marker@x.org" {
		t.Fatalf("a second expire: %+v", e)
	}
}

func decode(t *testing.T, raw []byte) events.Event {
	t.Helper()
	var e events.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e
}
