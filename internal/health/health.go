// Package health answers liveness (/health) and readiness (/ready) probes.
//
// Readiness is a registry of named checks (SIP listening, Redis and MySQL
// reachable, drachtio connected ...) that features add at wiring time; a
// probe runs them concurrently, each bounded by a timeout.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Check reports an error when its dependency is not usable.
type Check func(ctx context.Context) error

// Pinger is anything with a context-aware Ping (database/sql.DB fits).
type Pinger interface {
	PingContext(ctx context.Context) error
}

// PingCheck adapts a Pinger.
func PingCheck(p Pinger) Check { return p.PingContext }

// Registry holds the readiness checks.
type Registry struct {
	timeout time.Duration
	mu      sync.Mutex
	checks  map[string]Check
}

// New returns an empty registry; each check gets timeout (default 2 s).
func New(timeout time.Duration) *Registry {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Registry{timeout: timeout, checks: map[string]Check{}}
}

// Add registers (or replaces) the named readiness check.
func (r *Registry) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = c
}

// Status is a probe's answer.
type Status struct {
	Status string            `json:"status"` // ok or fail
	Checks map[string]string `json:"checks,omitempty"`
}

// Ready runs every check and reports each one's result.
func (r *Registry) Ready(ctx context.Context) Status {
	r.mu.Lock()
	names := make([]string, 0, len(r.checks))
	for n := range r.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = r.checks[n]
	}
	r.mu.Unlock()

	results := make([]string, len(names))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			results[i] = "ok"
			if err := run(cctx, c); err != nil {
				results[i] = err.Error()
			}
		}()
	}
	wg.Wait()
	st := Status{Status: "ok", Checks: map[string]string{}}
	for i, n := range names {
		st.Checks[n] = results[i]
		if results[i] != "ok" {
			st.Status = "fail"
		}
	}
	return st
}

// run calls c and gives up at the context deadline even when c ignores it.
func run(ctx context.Context, c Check) error {
	done := make(chan error, 1)
	go func() { done <- c(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Register adds /health and /ready to mux. /health answers 200 while the
// process serves HTTP (liveness); /ready answers 200 when every check
// passes, 503 otherwise, with the per-check results as JSON.
func (r *Registry) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, Status{Status: "ok"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, req *http.Request) {
		st := r.Ready(req.Context())
		code := http.StatusOK
		if st.Status != "ok" {
			code = http.StatusServiceUnavailable
		}
		write(w, code, st)
	})
}

func write(w http.ResponseWriter, code int, st Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}
