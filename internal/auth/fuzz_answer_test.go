package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// FuzzWebhookAnswer feeds hostile webhook answers through the real HTTP
// client path: never a panic, and a grant that cannot break the SIP answer.
func FuzzWebhookAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"status":"ok","expires":300,"call_hook":"http://a/b"}`,
		`{"status":"fail","msg":"x","blacklist":true,"headers":{"X-A":"1"}}`,
		`{"status":"OK","expires":"30"}`,
		`{"status":"ok","expires":-1e309}`,
		`{"headers":{"Via":"evil","X-B":"a\r\nInjected: 1"}}`,
		`[]`, `null`, ``, `{"status":`,
	} {
		f.Add(seed)
	}
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	f.Cleanup(srv.Close)
	w := NewWebhook(2*time.Second, "", alerts.Discard{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	req := registrar.AuthRequest{
		Account: &registrar.Account{SID: "a", Hook: &registrar.Webhook{URL: srv.URL, Method: "POST"}},
		Creds:   &digest.Credentials{Username: "u", Realm: "r", Nonce: "n", URI: "sip:r", Response: "x", Algorithm: "MD5"},
		Method:  "REGISTER",
		Expires: 3600,
		Source:  netip.MustParseAddrPort("127.0.0.1:5060"),
	}
	f.Fuzz(func(t *testing.T, answer string) {
		body = answer
		g, err := w.Authenticate(context.Background(), req)
		if err != nil {
			return
		}
		if g.Expires < 0 {
			t.Errorf("negative expires %d", g.Expires)
		}
		for k, v := range g.Headers {
			if strings.ContainsAny(k+v, "\r\n") {
				t.Errorf("header %q: %q can break the SIP message", k, v)
			}
		}
	})
}
