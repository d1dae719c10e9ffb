package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// A slow hook (a real HTTP server that holds each call until released): an
// account at its limit is answered ErrWebhookBusy without a call, other
// accounts are not affected, and slots come back when calls end.
func TestWebhook_BoundsConcurrentCallsPerAccount(t *testing.T) {
	const limit = 3
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	var calls atomic.Int32
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	wh, _ := newWebhook(30*time.Second, "")
	wh.SetMaxConcurrentPerAccount(limit)
	hook := &registrar.Webhook{URL: srv.URL}
	reqFor := func(account string) registrar.AuthRequest {
		req := authRequest(hook, "")
		req.Account.SID = account
		return req
	}

	type result struct {
		g   registrar.Grant
		err error
	}
	results := make(chan result, 2*limit)
	var wg sync.WaitGroup
	call := func(account string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := wh.Authenticate(context.Background(), reqFor(account))
			results <- result{g, err}
		}()
	}
	for range limit {
		call("acct-slow")
	}
	for range limit {
		<-arrived // all of them are at the hook
	}

	// The next call of that account is refused at once, without a request.
	for range 10 {
		_, err := wh.Authenticate(context.Background(), reqFor("acct-slow"))
		if !errors.Is(err, ErrWebhookBusy) {
			t.Fatalf("call beyond the limit: err = %v, want ErrWebhookBusy", err)
		}
	}
	if n := calls.Load(); n != limit {
		t.Fatalf("hook got %d calls, want %d", n, limit)
	}

	// Another account still gets through.
	call("acct-other")
	<-arrived

	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || !r.g.OK {
			t.Errorf("call in flight: grant %+v err %v", r.g, r.err)
		}
	}
	// Slots are back: the account calls again, and the table is empty after.
	if g, err := wh.Authenticate(context.Background(), reqFor("acct-slow")); err != nil || !g.OK {
		t.Fatalf("after release: grant %+v err %v", g, err)
	}
	wh.inflight.mu.Lock()
	left := len(wh.inflight.count)
	wh.inflight.mu.Unlock()
	if left != 0 {
		t.Errorf("%d accounts left in the in-flight table, want 0", left)
	}
}

// A call that fails (unreachable hook) gives its slot back too.
func TestWebhook_FailedCallReleasesSlot(t *testing.T) {
	wh, _ := newWebhook(time.Second, "")
	wh.SetMaxConcurrentPerAccount(1)
	hook := &registrar.Webhook{URL: "http://127.0.0.1:1/hook"} // nothing listens on port 1
	for range 3 {
		if _, err := wh.Authenticate(context.Background(), authRequest(hook, "")); errors.Is(err, ErrWebhookBusy) {
			t.Fatalf("slot not released after a failed call: %v", err)
		}
	}
}

func TestWebhook_NoBoundByDefault(t *testing.T) {
	f := newInFlight(0)
	for range 1000 {
		if !f.acquire("a") {
			t.Fatal("acquire refused without a bound")
		}
	}
}
