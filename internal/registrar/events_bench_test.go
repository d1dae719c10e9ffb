package registrar_test

import (
	"context"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// openNonces accepts every nonce once per count: the benchmark measures the
// chain, not replay protection.
type openNonces struct{}

func (openNonces) Issue() string                               { return "n" }
func (openNonces) Check(string) nonce.Verdict                  { return nonce.Valid }
func (openNonces) Claim(context.Context, string, string) error { return nil }

// discard is a backend that drops everything (the cost measured is the
// registrar's and the queue's, not Redis').
type discard struct{}

func (discard) Deliver(context.Context, [][]byte, []events.Keep) error { return nil }
func (discard) Subscribe(context.Context) (<-chan []byte, error)       { return nil, nil }
func (discard) ClaimExpired(context.Context, time.Time, int) ([]events.Claimed, int, error) {
	return nil, 0, nil
}

// BenchmarkRegisterEvents measures a REGISTER through the whole chain,
// authenticated and bound (bind) or answered from the stored binding
// (cached), without and with an event publisher (docs/events.md#cost).
func BenchmarkRegisterEvents(b *testing.B) {
	for _, path := range []string{"bind", "cached"} {
		for _, variant := range []string{"no-events", "events", "events-with-refresh"} {
			b.Run(path+"/"+variant, func(b *testing.B) {
				e := newEnv()
				e.nonces = openNonces{}
				if variant != "no-events" {
					// The defaults: refresh events off unless asked for.
					svc := events.New(events.Options{Backend: discard{}, Refresh: variant == "events-with-refresh"})
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { svc.Run(ctx); close(done) }()
					defer func() { cancel(); <-done }()
					e.pub = svc
				}
				reg := e.registrar()
				var opts []opt
				if path == "bind" {
					opts = append(opts, set("Authorization", sippAuthorization("n", "1234")))
				} else {
					e.store.put("john@jambonz.org", phoneSource, 10*time.Minute)
				}
				req := register(b, opts...)
				w := &discardWriter{}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if path == "bind" {
						delete(e.store.bindings, "john@jambonz.org")
					}
					reg.ServeSIP(ctx, w, req)
				}
				if w.last != 200 {
					b.Fatalf("answered %d", w.last)
				}
			})
		}
	}
}

type discardWriter struct{ last int }

func (w *discardWriter) Respond(_ context.Context, r *sipfront.Response) error {
	w.last = r.Code
	return nil
}

var _ registrar.Nonces = openNonces{}
