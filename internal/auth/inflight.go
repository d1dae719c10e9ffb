package auth

import (
	"fmt"
	"sync"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// ErrWebhookBusy is returned without calling the hook when the account
// already has its maximum number of calls in flight; the registrar answers
// 503 with Retry-After. A slow hook under a REGISTER flood then holds at
// most that many connections and goroutines per account, and the other
// accounts sharing the service are not starved.
// It wraps registrar.ErrAuthBusy, so the registrar logs it as load shed.
var ErrWebhookBusy = fmt.Errorf("webhook: %w for this account", registrar.ErrAuthBusy)

// inFlight counts calls in flight per key, with at most max each. Keys at
// zero are removed, so the table holds only accounts with calls running.
type inFlight struct {
	mu    sync.Mutex
	max   int
	count map[string]int
}

func newInFlight(max int) *inFlight {
	return &inFlight{max: max, count: map[string]int{}}
}

// acquire takes a slot of key; false when max are taken (max <= 0: no bound).
func (f *inFlight) acquire(key string) bool {
	if f == nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.max > 0 && f.count[key] >= f.max {
		return false
	}
	f.count[key]++
	return true
}

// release gives back a slot taken by acquire.
func (f *inFlight) release(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.count[key]; n > 1 {
		f.count[key] = n - 1
	} else {
		delete(f.count, key)
	}
}

// SetMaxConcurrentPerAccount bounds the calls in flight per account
// (WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT; 0: no bound). Call it before use.
func (w *Webhook) SetMaxConcurrentPerAccount(n int) {
	w.inflight = newInFlight(n)
}
