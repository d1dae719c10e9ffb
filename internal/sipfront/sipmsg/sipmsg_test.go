package sipmsg

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
)

func TestLenientParsers_KeepUnparseableHeaders(t *testing.T) {
	p := sip.NewParser(sip.WithHeadersParsers(lenientParsers()))
	tests := []struct {
		name, to string
		typed    bool
	}{
		{"valid To", "<sip:john@jambonz.org>", true},
		{"garbage To", "garbage", false},
		{"To without scheme", "<john@jambonz.org>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := p.ParseSIP([]byte(fronttest.Register("1", tt.to)))
			if err != nil {
				t.Fatalf("ParseSIP: %v", err)
			}
			req := msg.(*sip.Request)
			if (req.To() != nil) != tt.typed {
				t.Fatalf("To() = %v, typed want %v", req.To(), tt.typed)
			}
			h := req.GetHeader("To")
			if h == nil || h.Value() != tt.to {
				t.Fatalf("GetHeader(To) = %v, want %q kept", h, tt.to)
			}
		})
	}
}

func TestLenientParsers_ContactListStillSplit(t *testing.T) {
	p := sip.NewParser(sip.WithHeadersParsers(lenientParsers()))
	raw := strings.Replace(fronttest.Register("2", "<sip:john@jambonz.org>"),
		"Contact: <sip:john@127.0.0.1:5090>", "Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.4>;expires=60", 1)
	msg, err := p.ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	cs := msg.(*sip.Request).GetHeaders("Contact")
	if len(cs) != 2 {
		t.Fatalf("%d Contact headers, want 2", len(cs))
	}
	for _, c := range cs {
		if _, ok := c.(*sip.ContactHeader); !ok {
			t.Fatalf("Contact %T is not typed", c)
		}
	}
}

func TestBuildResponse(t *testing.T) {
	p := sip.NewParser(sip.WithHeadersParsers(lenientParsers()))
	for _, to := range []string{"<sip:john@jambonz.org>", "garbage"} {
		msg, err := p.ParseSIP([]byte(fronttest.Register("3", to)))
		if err != nil {
			t.Fatal(err)
		}
		req := msg.(*sip.Request)
		req.SetSource("127.0.0.1:5090")
		res := BuildResponse(req, &sipfront.Response{Code: 403, Headers: []sipfront.Header{{Name: "X-Reason", Value: "Invalid address of record"}}})
		if res.StatusCode != 403 || res.Reason != "Forbidden" {
			t.Fatalf("status %d %q", res.StatusCode, res.Reason)
		}
		for _, name := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
			if res.GetHeader(name) == nil {
				t.Errorf("To %q: response has no %s", to, name)
			}
		}
		if h := res.GetHeader("X-Reason"); h == nil || h.Value() != "Invalid address of record" {
			t.Errorf("X-Reason = %v", h)
		}
		custom := BuildResponse(req, &sipfront.Response{Code: 503, Reason: "Max Devices Registered"})
		if custom.Reason != "Max Devices Registered" {
			t.Errorf("reason = %q", custom.Reason)
		}
	}
}

// FuzzCheckRequest: whatever the parser accepts, CheckRequest and the
// answer built from a violation never panic, and the answer's status line
// is SIP/2.0.
func FuzzCheckRequest(f *testing.F) {
	f.Add([]byte(fronttest.Register("fuzz", "<sip:john@jambonz.org>")))
	f.Add([]byte("REGISTER sip:a SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 1\r\nContent-Length: 2\r\nt: <sip:a@b>\r\nTo: x\r\n\r\nab"))
	p := NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if v := sipfront.CheckRequest(req); v != nil {
			if res := BuildResponse(req, v.Response()); res.SipVersion != "SIP/2.0" || res.StatusCode != v.Code {
				t.Fatalf("answer %s %d for violation %+v", res.SipVersion, res.StatusCode, v)
			}
		}
	})
}
