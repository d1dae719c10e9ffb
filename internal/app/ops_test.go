package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
)

func TestHTTPMux_PProfOnlyForLoopbackPeers(t *testing.T) {
	mux := httpMux(true, metrics.New("test", nil), health.New(0))
	tests := []struct {
		remote string
		path   string
		want   int
	}{
		{"127.0.0.1:40000", "/debug/pprof/", http.StatusOK},
		{"127.1.2.3:40000", "/debug/pprof/cmdline", http.StatusOK},
		{"[::1]:40000", "/debug/pprof/", http.StatusOK},
		{"[::ffff:127.0.0.1]:40000", "/debug/pprof/", http.StatusOK},
		{"192.0.2.10:40000", "/debug/pprof/", http.StatusForbidden},
		{"10.0.0.1:40000", "/debug/pprof/cmdline", http.StatusForbidden},
		{"192.0.2.10:40000", "/debug/pprof/profile?seconds=1", http.StatusForbidden},
		{"192.0.2.10:40000", "/debug/pprof/trace?seconds=1", http.StatusForbidden},
		{"192.0.2.10:40000", "/debug/pprof/symbol", http.StatusForbidden},
		{"192.0.2.10:40000", "/debug/pprof/heap", http.StatusForbidden},
		{"[2001:db8::1]:40000", "/debug/pprof/", http.StatusForbidden},
		{"[::ffff:192.0.2.10]:40000", "/debug/pprof/", http.StatusForbidden},
		{"not-an-address", "/debug/pprof/", http.StatusForbidden},
		// Probes and metrics stay open to the network.
		{"192.0.2.10:40000", "/metrics", http.StatusOK},
		{"192.0.2.10:40000", "/health", http.StatusOK},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		req.RemoteAddr = tt.remote
		req.Header.Set("X-Forwarded-For", "127.0.0.1") // set by the client: ignored
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("GET %s from %s = %d, want %d", tt.path, tt.remote, rec.Code, tt.want)
		}
	}
}

func TestHTTPMux_NoPProfWithoutPPROF(t *testing.T) {
	mux := httpMux(false, metrics.New("test", nil), health.New(0))
	req := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without PPROF = %d, want 404", rec.Code)
	}
}

// serveHTTP over a real socket: a loopback client gets the profiler.
func TestServeHTTP_LoopbackClientGetsPProf(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	j := newJobs(context.Background())
	defer j.stop() // after stop: the server's goroutine is owned by the jobs
	stop, err := serveHTTP(j, "127.0.0.1:0", true, metrics.New("test", nil), health.New(0), log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var line struct{ Addr string }
	if err := json.Unmarshal([]byte(strings.SplitN(logs.String(), "\n", 2)[0]), &line); err != nil || line.Addr == "" {
		t.Fatalf("no listen address logged: %q", logs.String())
	}
	for path, want := range map[string]int{"/debug/pprof/cmdline": 200, "/ready": 200, "/metrics": 200} {
		res, err := http.Get("http://" + line.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d %s, want %d", path, res.StatusCode, body, want)
		}
	}
}
