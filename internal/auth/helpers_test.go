package auth

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// recordingAlerter keeps the alerts it is given.
type recordingAlerter struct {
	mu  sync.Mutex
	got []alerts.Alert
}

func (r *recordingAlerter) Alert(_ context.Context, a alerts.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
}

func (r *recordingAlerter) all() []alerts.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alerts.Alert(nil), r.got...)
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sippCreds are credentials as sipp sends them, with the right response for
// password.
func sippCreds(username, password string) *digest.Credentials {
	c := &digest.Credentials{
		Scheme: "digest", Username: username, Realm: "jambonz.org", Nonce: "abc",
		URI: "sip:127.0.0.1:5060", Algorithm: "MD5", QOP: "auth", NC: "00000001", CNonce: "6b8b4567",
	}
	c.Response, _ = digest.Response(c, "REGISTER", password)
	return c
}

func authRequest(hook *registrar.Webhook, secret string) registrar.AuthRequest {
	return registrar.AuthRequest{
		Account: &registrar.Account{
			SID: "acct-1", ServiceProviderSID: "sp-1", Realm: "jambonz.org", Active: true,
			WebhookSecret: secret, Hook: hook,
		},
		Creds:   sippCreds("john", "1234"),
		Method:  "REGISTER",
		Expires: 3600,
		Source:  netip.MustParseAddrPort("127.0.0.1:5090"),
		CallID:  "call-1",
		Headers: map[string]string{
			"via":     "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1",
			"to":      "<sip:john@jambonz.org>",
			"contact": "<sip:john@127.0.0.1:5090>",
		},
	}
}

// digestResponse computes the right response of req's credentials for password.
func digestResponse(req registrar.AuthRequest, password string) (string, error) {
	return digest.Response(req.Creds, req.Method, password)
}
