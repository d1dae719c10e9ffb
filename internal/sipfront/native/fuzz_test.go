package native

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzCheckRequest: whatever the parser accepts, CheckRequest, the UDP
// pre-filter and the answer built from a violation never panic, and the
// answer's status line is SIP/2.0.
func FuzzCheckRequest(f *testing.F) {
	f.Add([]byte(registerText("fuzz", "<sip:john@jambonz.org>")))
	f.Add([]byte("REGISTER sip:a SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 1\r\nContent-Length: 2\r\nt: <sip:a@b>\r\nTo: x\r\n\r\nab"))
	p := NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = looksLikeSIP(data)
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if v := CheckRequest(req); v != nil {
			if res := BuildResponse(req, v.Response()); res.SipVersion != "SIP/2.0" || res.StatusCode != v.Code {
				t.Fatalf("answer %s %d for violation %+v", res.SipVersion, res.StatusCode, v)
			}
		}
	})
}
