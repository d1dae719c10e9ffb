package alerts

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// influxServer records /write requests like InfluxDB 1.x would receive them.
type influxServer struct {
	mu     sync.Mutex
	bodies []string
	query  []string
	status int
}

func (s *influxServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != "/write" {
		w.WriteHeader(404)
		return
	}
	s.bodies = append(s.bodies, string(b))
	s.query = append(s.query, r.URL.RawQuery)
	if s.status != 0 {
		w.WriteHeader(s.status)
		return
	}
	w.WriteHeader(204)
}

func (s *influxServer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.bodies {
		out = append(out, strings.Split(strings.TrimSpace(b), "\n")...)
	}
	return out
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestInflux_WritesLineProtocolInBatches(t *testing.T) {
	srv := &influxServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	w := NewInflux(InfluxOptions{URL: hs.URL, BatchSize: 2, FlushEvery: 20 * time.Millisecond, Log: quietLog()})
	w.now = func() time.Time { return time.Unix(1700000000, 0) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()

	w.Alert(ctx, Alert{Type: WebhookFailure, AccountSID: "acc 1", ServiceProviderSID: "sp,1", Message: `hook "x" failed`, Detail: "HTTP 500"})
	w.Alert(ctx, Alert{Message: "Disabling Options ping for 1.2.3.4 in carrier c(s)"})
	w.Alert(ctx, Alert{Type: AccountDeviceLimit, AccountSID: "a"})
	cancel()
	<-done

	got := srv.lines()
	want := []string{
		`alerts,account_sid=acc\ 1,alert_type=webhook-failure,service_provider_sid=sp\,1 message="hook \"x\" failed",detail="HTTP 500" 1700000000000000000`,
		`alerts message="Disabling Options ping for 1.2.3.4 in carrier c(s)" 1700000000000000001`,
		`alerts,account_sid=a,alert_type=account-device-limit message="account-device-limit" 1700000000000000000`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(srv.bodies) != 2 {
		t.Errorf("%d writes, want 2 (batch of 2, then the rest)", len(srv.bodies))
	}
	if srv.query[0] != "db=alerts&precision=ns" {
		t.Errorf("query %q", srv.query[0])
	}
	if w.Written() != 3 || w.Dropped() != 0 {
		t.Errorf("written %d dropped %d", w.Written(), w.Dropped())
	}
}

func TestInflux_DropsAndCountsWhenDown(t *testing.T) {
	srv := &influxServer{status: 500}
	hs := httptest.NewServer(srv)
	w := NewInflux(InfluxOptions{URL: hs.URL, BatchSize: 10, FlushEvery: 10 * time.Millisecond, Log: quietLog()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	w.Alert(ctx, Alert{Message: "one"})
	deadline := time.Now().Add(5 * time.Second)
	for w.Dropped() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.Dropped() != 1 {
		t.Fatalf("dropped %d after HTTP 500, want 1", w.Dropped())
	}
	hs.Close() // connection refused from now on
	w.Alert(ctx, Alert{Message: "two"})
	for w.Dropped() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.Dropped() != 2 {
		t.Fatalf("dropped %d when unreachable, want 2", w.Dropped())
	}
	cancel()
	<-done
}

func TestInflux_AlertNeverBlocksWhenQueueFull(t *testing.T) {
	// No Run: nothing drains the queue.
	w := NewInflux(InfluxOptions{URL: "http://127.0.0.1:1", QueueSize: 3, Log: quietLog()})
	for i := 0; i < 10; i++ {
		w.Alert(context.Background(), Alert{Message: "m"})
	}
	if w.Dropped() != 7 {
		t.Fatalf("dropped %d, want 7", w.Dropped())
	}
}

func TestInfluxURL(t *testing.T) {
	for in, want := range map[string]string{
		"influxdb":           "http://influxdb:8086",
		"10.0.0.5:9999":      "http://10.0.0.5:9999",
		"https://influx:443": "https://influx:443",
	} {
		if got := InfluxURL(in); got != want {
			t.Errorf("InfluxURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteLine_EscapesNewlines(t *testing.T) {
	var b bytes.Buffer
	writeLine(&b, Alert{Message: "a\nb", Detail: `c\d`}, 1)
	if got := b.String(); got != "alerts message=\"a\\nb\",detail=\"c\\\\d\" 1\n" {
		t.Fatalf("%q", got)
	}
}
