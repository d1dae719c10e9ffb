package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// BenchmarkWebhook is one registration webhook call (POST, signed, with the
// request's headers) against a real HTTP server on loopback that answers
// {"status":"ok"}, over kept-alive connections. The server's work is in the
// figures too (same process); it does the same for every version of the
// client. docs/performance.md records the figures.
func BenchmarkWebhook(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok","expires":3600}`)
	}))
	defer srv.Close()
	wh := NewWebhook(5*time.Second, "jambonz", nil, discardLog())
	wh.SetMaxConcurrentPerAccount(50)
	req := authRequest(&registrar.Webhook{URL: srv.URL + "/auth", Method: "POST"}, "benchsecret")
	req.Headers["user-agent"] = "sipp"
	req.Headers["max-forwards"] = "70"
	req.Headers["from"] = "<sip:john@jambonz.org>;tag=1234"
	req.Headers["call-id"] = "1-1234@127.0.0.1"
	req.Headers["cseq"] = "2 REGISTER"
	req.Headers["expires"] = "3600"
	req.Headers["content-length"] = "0"
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g, err := wh.Authenticate(ctx, req)
			if err != nil || !g.OK {
				b.Fatalf("grant %+v err %v", g, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g, err := wh.Authenticate(ctx, req)
				if err != nil || !g.OK {
					b.Errorf("grant %+v err %v", g, err)
					return
				}
			}
		})
	})
}
