package events_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// fakeBackend records deliveries and hands out scripted claims.
type fakeBackend struct {
	mu        sync.Mutex
	published [][]byte
	kept      map[string]events.Keep
	claims    []events.Claimed
	delivered chan struct{}
}

func newBackend() *fakeBackend {
	return &fakeBackend{kept: map[string]events.Keep{}, delivered: make(chan struct{}, 100)}
}

func (b *fakeBackend) Deliver(_ context.Context, publish [][]byte, keep []events.Keep) error {
	b.mu.Lock()
	b.published = append(b.published, publish...)
	for _, k := range keep {
		b.kept[k.AoR] = k
	}
	b.mu.Unlock()
	b.delivered <- struct{}{}
	return nil
}

func (b *fakeBackend) Subscribe(context.Context) (<-chan []byte, error) { return nil, nil }

func (b *fakeBackend) ClaimExpired(context.Context, time.Time, int) ([]events.Claimed, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.claims
	b.claims = nil
	return out, 7, nil
}

func (b *fakeBackend) types() []events.Type {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []events.Type
	for _, raw := range b.published {
		var e events.Event
		_ = json.Unmarshal(raw, &e)
		out = append(out, e.Type)
	}
	return out
}

// run starts the service with a sweep that never ticks on its own.
func run(t *testing.T, opts events.Options) *events.Service {
	t.Helper()
	opts.SweepEvery = time.Hour
	opts.Now = func() time.Time { return now }
	svc := events.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

func register(aor string, expiry int64) events.Event {
	return events.Event{Type: events.Register, Time: events.Millis(now), AoR: aor, Realm: events.RealmOf(aor),
		AccountSID: "acct", Contact: "sip:" + aor, Expires: 60, BindingExpiry: expiry}
}

func TestServiceRefreshOffKeepsButDoesNotPublish(t *testing.T) {
	b := newBackend()
	svc := run(t, events.Options{Backend: b})
	svc.Publish(events.Event{Type: events.Refresh, AoR: "cached@x"}) // wrote nothing: dropped at once
	refresh := register("a@x", 1000)
	refresh.Type = events.Refresh
	svc.Publish(refresh)
	<-b.delivered
	svc.Publish(register("b@x", 2000))
	<-b.delivered
	if got := b.types(); len(got) != 1 || got[0] != events.Register {
		t.Fatalf("published %v, want [register]", got)
	}
	if _, ok := b.kept["a@x"]; !ok {
		t.Fatal("the refresh's record was not kept")
	}
	if _, ok := b.kept["cached@x"]; ok {
		t.Fatal("a cached refresh was kept")
	}
}

func TestServiceSweepReportsEachClaimWithItsRecord(t *testing.T) {
	b := newBackend()
	svc := run(t, events.Options{Backend: b, Refresh: true})
	svc.Publish(register("a@x", 1000))
	<-b.delivered
	b.mu.Lock()
	b.claims = []events.Claimed{
		{AoR: "a@x", Expiry: 1000, Value: b.kept["a@x"].Value},
		{AoR: "b@x", Expiry: 5000, Value: b.kept["a@x"].Value}, // another binding's record
		{AoR: "c@y", Expiry: 5000},                             // none kept
	}
	b.mu.Unlock()
	if n, err := svc.Count(context.Background()); err != nil || n != 7 {
		t.Fatalf("Count = %d, %v; want 7 (the backend's remaining)", n, err)
	}
	for len(b.types()) < 4 {
		<-b.delivered
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var got []events.Event
	for _, raw := range b.published[1:] {
		var e events.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	want := []events.Event{
		{Type: events.Expire, Time: events.Millis(now), AoR: "a@x", Realm: "x", AccountSID: "acct", Contact: "sip:a@x", Expires: 60},
		{Type: events.Expire, Time: events.Millis(now), AoR: "b@x", Realm: "x"},
		{Type: events.Expire, Time: events.Millis(now), AoR: "c@y", Realm: "y"},
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].AoR != want[i].AoR || got[i].AccountSID != want[i].AccountSID ||
			got[i].Contact != want[i].Contact || got[i].Expires != want[i].Expires || !time.Time(got[i].Time).Equal(now) {
			t.Errorf("expire %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestEventJSON(t *testing.T) {
	raw, err := json.Marshal(events.Event{Type: events.Unregister, Time: events.Millis(now), AoR: "a@x", BindingExpiry: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"unregister","time":"2026-01-02T03:04:05.678Z","aor":"a@x","expires":0}`
	if string(raw) != want {
		t.Fatalf("JSON = %s, want %s", raw, want)
	}
}

func TestFilter(t *testing.T) {
	f := events.Filter{Types: []events.Type{events.Expire}, Realm: "X.org"}
	for raw, want := range map[string]bool{
		`{"type":"expire","realm":"x.org"}`:   true,
		`{"type":"register","realm":"x.org"}`: false,
		`{"type":"expire","realm":"y.org"}`:   false,
		`not json`:                            false,
	} {
		if got := f.MatchJSON([]byte(raw)); got != want {
			t.Errorf("MatchJSON(%s) = %v, want %v", raw, got, want)
		}
	}
	if _, err := events.ParseType("expired"); err == nil {
		t.Error("ParseType accepted an unknown type")
	}
}

func TestBusFansOutAndForgetsCancelledSubscribers(t *testing.T) {
	var bus events.Bus
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := bus.Subscribe(ctx)
	b, _ := bus.Subscribe(context.Background())
	bus.Broadcast([]byte("1"))
	if string(<-a) != "1" || string(<-b) != "1" {
		t.Fatal("not fanned out")
	}
	cancel()
	for range a { // closed once cancelled
	}
	bus.Broadcast([]byte("2"))
	if string(<-b) != "2" {
		t.Fatal("remaining subscriber missed an event")
	}
}

// keyedBackend is a backend whose events ride on binding writes.
type keyedBackend struct{ *fakeBackend }

func (keyedBackend) Channel() string              { return "c:registration-events" }
func (keyedBackend) BindingKey(aor string) string { return "c:registration-events:binding:" + aor }

type recSink struct{ got [][]byte }

func (s *recSink) Enqueue(raw []byte) { s.got = append(s.got, raw) }

// Inline encodes the event as the queue path does: the same JSON published,
// the record kept only for a binding write, a refresh kept but not
// published while refresh events are off; Sent hands it to the webhook.
func TestInline(t *testing.T) {
	sink := &recSink{}
	s := events.New(events.Options{Backend: keyedBackend{newBackend()}, Webhook: sink, Now: func() time.Time { return now }})
	reg := events.Event{Type: events.Register, Time: events.Millis(now), AoR: "a@x.org", Realm: "x.org", Expires: 60,
		BindingExpiry: now.Add(time.Minute).UnixMilli()}
	in := s.Inline(reg)
	wantRaw, _ := json.Marshal(reg)
	if in == nil || string(in.Publish) != string(wantRaw) || in.Channel != "c:registration-events" {
		t.Fatalf("inline %+v", in)
	}
	if in.KeepKey != "c:registration-events:binding:a@x.org" || in.KeepTTL != time.Minute+5*time.Minute {
		t.Fatalf("record %q for %v", in.KeepKey, in.KeepTTL)
	}
	var rec struct {
		Expiry int64           `json:"expiry"`
		Event  json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(in.Keep, &rec); err != nil || rec.Expiry != reg.BindingExpiry || string(rec.Event) != string(wantRaw) {
		t.Fatalf("record %s", in.Keep)
	}
	s.Sent(in)
	if len(sink.got) != 1 || string(sink.got[0]) != string(wantRaw) {
		t.Fatalf("webhook got %q", sink.got)
	}

	ref := reg
	ref.Type = events.Refresh
	if in := s.Inline(ref); in == nil || in.Publish != nil || in.KeepKey == "" {
		t.Fatalf("refresh with refresh events off: %+v", in)
	}
	unreg := events.Event{Type: events.Unregister, Time: events.Millis(now), AoR: "a@x.org"}
	if in := s.Inline(unreg); in == nil || in.KeepKey != "" || in.Publish == nil {
		t.Fatalf("unregister: %+v", in)
	}
	failed := s.Inline(unreg)
	failed.Err = events.ErrNotCarried
	s.Sent(failed)
	if len(sink.got) != 1 {
		t.Fatal("a failed event reached the webhook")
	}

	// A backend without keys (the in-process bus): the queue path.
	if in := events.New(events.Options{Backend: newBackend()}).Inline(reg); in != nil {
		t.Fatalf("inline without keys: %+v", in)
	}
}
