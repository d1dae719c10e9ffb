package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

// droppedFull reads the count of events lost to a full queue.
func droppedFull(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sbc_sip_sidecar_registration_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == "queue" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// The queue holds at most Options.Queue events: beyond it they are dropped
// and counted, and Publish never blocks. What was queued is delivered in
// order, also when Run only starts afterwards and stops at once (the drain
// on shutdown).
func TestServiceQueueBoundedAndDrainedInOrder(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBackend()
	svc := events.New(events.Options{Backend: b, Queue: 3, SweepEvery: time.Hour, Metrics: events.NewMetrics(reg),
		Now: func() time.Time { return now }})
	for i := range 5 {
		svc.Publish(register(fmt.Sprintf("u%d@example.com", i), 0))
	}
	if n := droppedFull(t, reg); n != 2 {
		t.Fatalf("%v events counted as dropped (queue full), want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what is queued and returns
	svc.Run(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	var got []string
	for _, raw := range b.published {
		got = append(got, string(raw))
	}
	if len(got) != 3 {
		t.Fatalf("%d events delivered, want the 3 queued", len(got))
	}
	for i, raw := range got {
		if want := fmt.Sprintf(`"aor":"u%d@example.com"`, i); !strings.Contains(raw, want) {
			t.Fatalf("event %d is %s, want %s (arrival order)", i, raw, want)
		}
	}
}

// A burst larger than one backend round trip (256 events) is delivered in
// several, in order, with nothing lost.
func TestServiceQueueBurstDeliveredInBatches(t *testing.T) {
	b := newBackend()
	b.delivered = make(chan struct{}, 1000)
	svc := events.New(events.Options{Backend: b, Queue: 1000, SweepEvery: time.Hour, Now: func() time.Time { return now }})
	for i := range 600 {
		svc.Publish(register(fmt.Sprintf("u%d@example.com", i), 0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	for n := 0; n < 600; {
		<-b.delivered
		b.mu.Lock()
		n = len(b.published)
		b.mu.Unlock()
	}
	cancel()
	<-done
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, raw := range b.published {
		if want := fmt.Sprintf(`"aor":"u%d@example.com"`, i); !strings.Contains(string(raw), want) {
			t.Fatalf("event %d is %s, want %s", i, raw, want)
		}
	}
}
