package registrar_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

func TestRegister_AuthenticationRefused(t *testing.T) {
	tests := []struct {
		name        string
		grant       registrar.Grant
		wantCode    int
		wantReason  string
		wantHeaders map[string]string
	}{
		{"invalid credentials", registrar.Grant{Status: 200, Msg: "bad password"}, 403, "Invalid credentials", nil},
		{"status 0 treated as a verdict", registrar.Grant{}, 403, "Invalid credentials", nil},
		{"blacklisted", registrar.Grant{Status: 200, Blacklist: true}, 403, "detected potential spammer from 127.0.0.1:5090", nil},
		{"answer headers added", registrar.Grant{Status: 200, Headers: map[string]string{"X-Custom": "v1"}}, 403, "Invalid credentials",
			map[string]string{"X-Custom": "v1"}},
		{"hook's X-Reason replaces ours", registrar.Grant{Status: 200, Headers: map[string]string{"X-Reason": "account suspended"}}, 403, "account suspended", nil},
		// A hook's HTTP failure never passes through (docs/security.md).
		{"hook answered 404", registrar.Grant{Status: 404}, 403, registrar.ReasonHookRefused, nil},
		{"hook answered 401: no WWW-Authenticate-less 401", registrar.Grant{Status: 401}, 403, registrar.ReasonHookRefused,
			map[string]string{"WWW-Authenticate": ""}},
		{"hook answered 500", registrar.Grant{Status: 500}, 503, "", map[string]string{"Retry-After": "30"}},
		{"hook answered 503", registrar.Grant{Status: 503}, 503, "", map[string]string{"Retry-After": "30"}},
		{"hook answered 600", registrar.Grant{Status: 600}, 503, "", map[string]string{"Retry-After": "30"}},
		{"hook answered 302", registrar.Grant{Status: 302}, 503, "", map[string]string{"Retry-After": "30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.clients.grant = tt.grant
			res := e.authorized(t)
			want := map[string]string{"X-Reason": tt.wantReason}
			for k, v := range tt.wantHeaders {
				want[k] = v
			}
			expect(t, res, tt.wantCode, want)
			n := 0
			for _, h := range res.Headers {
				if h.Name == "X-Reason" {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%d X-Reason headers: %v", n, res.Headers)
			}
			if e.store.binds != 0 || len(e.store.bindings) != 0 {
				t.Fatal("bound after a refused authentication")
			}
		})
	}
}

func TestRegister_AuthenticatorError(t *testing.T) {
	e := newEnv()
	e.clients.err = errors.New("clients table unreachable")
	res := e.authorized(t)
	expect(t, res, 503, nil)
	if res.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

// An authenticator that declines to run (its bound of calls in flight, as
// the webhook's per account) is load shed: the same 503, logged as a
// warning; any other error is a failure, logged as an error.
func TestRegister_AuthenticatorBusyIsAWarning(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantLevel string
	}{
		{"failed", errors.New("clients table unreachable"), "ERROR"},
		{"busy", fmt.Errorf("account A: webhook: %w for this account", registrar.ErrAuthBusy), "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			e := newEnv()
			e.log = slog.New(slog.NewJSONHandler(&buf, nil))
			e.clients.err = tt.err
			res := e.authorized(t)
			expect(t, res, 503, map[string]string{"Retry-After": "30"})
			var levels []string
			for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
				var rec struct{ Level, Msg string }
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if strings.HasPrefix(rec.Msg, "register: authentication") {
					levels = append(levels, rec.Level)
				}
			}
			if len(levels) != 1 || levels[0] != tt.wantLevel {
				t.Fatalf("authentication log lines at levels %v, want one at %s (log: %s)", levels, tt.wantLevel, buf.String())
			}
		})
	}
}

func TestRegister_AuthenticatorChoice(t *testing.T) {
	tests := []struct {
		name        string
		hook        *registrar.Webhook
		wantWebhook bool
	}{
		{"no hook: clients table", nil, false},
		{"hook without URL: clients table", &registrar.Webhook{Method: "POST"}, false},
		{"hook: webhook", &registrar.Webhook{URL: "https://example.com/auth", Method: "POST"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.dir.accounts["jambonz.org"].Hook = tt.hook
			expect(t, e.authorized(t), 200, nil)
			if (e.webhook.count() == 1) != tt.wantWebhook || e.webhook.count()+e.clients.count() != 1 {
				t.Fatalf("webhook calls %d, clients calls %d", e.webhook.count(), e.clients.count())
			}
		})
	}
}

func TestRegister_AuthRequestFields(t *testing.T) {
	e := newEnv()
	expect(t, e.authorized(t), 200, nil)
	if len(e.clients.calls) != 1 {
		t.Fatalf("%d calls", len(e.clients.calls))
	}
	got := e.clients.calls[0]
	if got.Method != "REGISTER" || got.Expires != 3600 || got.Source != netip.MustParseAddrPort(phoneSource) ||
		got.CallID != "call-1@127.0.0.1" || got.Account == nil || got.Account.SID != "acct-1" {
		t.Fatalf("request = %+v", got)
	}
	c := got.Creds
	if c == nil || c.Username != "john" || c.Realm != "jambonz.org" || c.URI != "sip:127.0.0.1:5060" ||
		c.QOP != "auth" || c.NC != "00000001" || c.CNonce != "6b8b4567" || c.Algorithm != "MD5" || c.Response == "" {
		t.Fatalf("creds = %+v", c)
	}
	for name, want := range map[string]string{
		"via": "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-524287-1;rport", "cseq": "2 REGISTER",
		"to": "<sip:john@jambonz.org>", "contact": "<sip:john@127.0.0.1:5090>", "expires": "3600", "user-agent": "sipp",
	} {
		if got.Headers[name] != want {
			t.Errorf("headers[%q] = %q, want %q", name, got.Headers[name], want)
		}
	}
	for name := range got.Headers {
		if name != strings.ToLower(name) {
			t.Errorf("header name %q not lower-case", name)
		}
	}
	if !strings.HasPrefix(got.Headers["authorization"], "Digest ") {
		t.Errorf("authorization header = %q", got.Headers["authorization"])
	}
}

func TestRegister_PanickingAuthenticator(t *testing.T) {
	e := newEnv()
	e.clients.panics = true
	res := e.authorized(t)
	expect(t, res, 500, nil)
	if e.store.binds != 0 {
		t.Fatal("bound after a panic")
	}
	// The registrar keeps serving.
	e.clients.panics = false
	expect(t, e.authorized(t), 200, nil)
}
