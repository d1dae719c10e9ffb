package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/webhook"
)

// receiver is the customer's endpoint: it checks signatures and records
// the events of accepted batches; while down it answers 503.
type receiver struct {
	mu       sync.Mutex
	got      []map[string]any
	badSig   int
	down     atomic.Bool
	attempts atomic.Int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.attempts.Add(1)
	body, _ := io.ReadAll(req.Body)
	if r.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !validSignature("evsecret", req.Header.Get("Jambonz-Signature"), body) {
		r.badSig++
	}
	var batch []map[string]any
	if err := json.Unmarshal(body, &batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got = append(r.got, batch...)
}

func (r *receiver) count() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got), r.badSig
}

// validSignature checks "t=<unix>,v1=<hex hmac-sha256(secret, t.body)>".
func validSignature(secret, header string, body []byte) bool {
	ts, v1, ok := strings.Cut(header, ",v1=")
	if !ok || !strings.HasPrefix(ts, "t=") {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
	mac.Write(body)
	return hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil))))
}

func event(i int) []byte {
	raw, _ := json.Marshal(events.Event{Type: events.Register, AoR: "u" + string(rune('a'+i%26)) + "@x", Expires: i})
	return raw
}

func start(t *testing.T, rcv *receiver, queue int) (*webhook.Sender, *prometheus.Registry) {
	t.Helper()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	s, err := webhook.New(webhook.Options{URL: srv.URL + "/events", Secret: "evsecret", Queue: queue, Batch: 10,
		Flush: 20 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Metrics: events.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversSignedBatches(t *testing.T) {
	rcv := &receiver{}
	s, _ := start(t, rcv, 100)
	for i := range 25 {
		s.Enqueue(event(i))
	}
	waitFor(t, "25 events", func() bool { n, _ := rcv.count(); return n == 25 })
	if _, bad := rcv.count(); bad != 0 {
		t.Fatalf("%d batches with a bad signature", bad)
	}
	if n := rcv.attempts.Load(); n > 25 || n < 3 {
		t.Fatalf("%d POSTs for 25 events in batches of at most 10", n)
	}
}

func TestSurvivesReceiverDownBoundedAndCounted(t *testing.T) {
	rcv := &receiver{}
	rcv.down.Store(true)
	s, reg := start(t, rcv, 5)
	const total = 40
	for i := range total {
		s.Enqueue(event(i))
	}
	dropped := func() int {
		return counter(reg, "sbc_sip_sidecar_registration_events_dropped_total", "sink", "webhook")
	}
	// The queue holds 5 and one batch of at most 10 is being retried.
	if d := dropped(); d < total-5-10 {
		t.Fatalf("dropped %d of %d with a queue of 5 and batches of 10", d, total)
	}
	waitFor(t, "retries while down", func() bool { return rcv.attempts.Load() >= 3 })
	rcv.down.Store(false)
	waitFor(t, "recovery", func() bool { n, _ := rcv.count(); return n+dropped() == total })
	if n, bad := rcv.count(); n == 0 || bad != 0 {
		t.Fatalf("after recovery: %d delivered, %d bad signatures", n, bad)
	}
	if v := counter(reg, "sbc_sip_sidecar_registration_events_webhook_requests_total", "result", "retry"); v < 2 {
		t.Fatalf("retry attempts counted %v", v)
	}
}

// counter sums the samples of a metric whose labels include label=value.
func counter(reg *prometheus.Registry, name, label, value string) int {
	mfs, _ := reg.Gather()
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(n)
}

func TestRejectsNonHTTPURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "localhost:80", "http://"} {
		if _, err := webhook.New(webhook.Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
