package logging_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

const secret = "6629fae49393a05397450978507c4ef1"

func TestRedact_CredentialHeadersInAnyCaseAndForm(t *testing.T) {
	tests := []struct{ name, in, keep string }{
		{"canonical", "REGISTER sip:x SIP/2.0\r\nAuthorization: Digest username=\"u\", response=\"" + secret + "\"\r\nVia: SIP/2.0/UDP h\r\n", "Via: SIP/2.0/UDP h"},
		{"lower case", "authorization: Digest response=\"" + secret + "\"\r\nTo: <sip:a@b>", "To: <sip:a@b>"},
		{"upper case", "AUTHORIZATION: Digest response=\"" + secret + "\"\nTo: x", "To: x"},
		{"mixed case", "AuThOrIzAtIoN: Digest response=\"" + secret + "\"", ""},
		{"no blank after colon", "Authorization:Digest response=\"" + secret + "\"", ""},
		{"blanks before colon", "Authorization \t: Digest response=\"" + secret + "\"", ""},
		{"proxy", "Proxy-Authorization: Digest response=\"" + secret + "\"\r\nCSeq: 1 REGISTER", "CSeq: 1 REGISTER"},
		{"proxy upper case", "PROXY-AUTHORIZATION: Digest response=\"" + secret + "\"", ""},
		{"folded continuation", "Authorization: Digest username=\"u\",\r\n  response=\"" + secret + "\"\r\nCall-ID: c1", "Call-ID: c1"},
		{"Go map", "map[authorization:Digest response=\"" + secret + "\" via:x]", ""},
		{"JSON", `{"authorization": "Digest response=\"` + secret + `\""}`, ""},
		{"query form", "authorization=Digest%20response%3D" + secret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := logging.Redact(tt.in)
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q: secret left", tt.in, got)
			}
			if !strings.Contains(got, "<redacted>") {
				t.Errorf("Redact(%q) = %q: no <redacted>", tt.in, got)
			}
			if tt.keep != "" && !strings.Contains(got, tt.keep) {
				t.Errorf("Redact(%q) = %q: lost %q", tt.in, got, tt.keep)
			}
		})
	}
}

func TestRedact_LeavesOtherTextAlone(t *testing.T) {
	for _, s := range []string{"", "register: unknown realm", "WWW-Authenticate: Digest realm=\"x\"", "authorize me"} {
		if got := logging.Redact(s); got != s {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
}

func TestNew_RedactsValuesKeysErrorsAndHeaderMaps(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "debug")
	log.Info("raw", "msg_text", "AUTHORIZATION: Digest response=\""+secret+"\"")
	log.Info("keyed", "Authorization", "Digest response=\""+secret+"\"", "PROXY-AUTHORIZATION", secret)
	log.Info("error", "err", errors.New("parse failed: authorization:Digest response="+secret))
	log.Info("bytes", "raw", []byte("Proxy-Authorization: "+secret))
	log.Info("headers", "headers", map[string]string{"authorization": "Digest response=" + secret, "via": "SIP/2.0/UDP h"})
	log.With("call_id", "c").WithGroup("g").Info("grouped", "Authorization", secret)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("secret in log:\n%s", out)
	}
	if got := strings.Count(out, "<redacted>"); got < 7 {
		t.Errorf("%d redactions, want 7:\n%s", got, out)
	}
	if !strings.Contains(out, "SIP/2.0/UDP h") {
		t.Errorf("other header values lost:\n%s", out)
	}
}
