package sipfront_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

func TestCheckRequest(t *testing.T) {
	base := fronttest.Register("strict", "<sip:john@jambonz.org>")
	cases := []struct {
		name    string
		raw     string
		code    int
		framing bool
	}{
		{"valid", base, 0, false},
		{"SIP/3.0", strings.Replace(base, "jambonz.org SIP/2.0", "jambonz.org SIP/3.0", 1), 505, false},
		{"two To", strings.Replace(base, "CSeq:", "To: <sip:mallory@jambonz.org>\r\nCSeq:", 1), 400, false},
		{"compact t after To", strings.Replace(base, "CSeq:", "t: <sip:mallory@jambonz.org>\r\nCSeq:", 1), 400, false},
		{"two From", strings.Replace(base, "CSeq:", "f: <sip:x@y>;tag=2\r\nCSeq:", 1), 400, false},
		{"two Call-ID", strings.Replace(base, "CSeq:", "i: other\r\nCSeq:", 1), 400, false},
		{"two CSeq", strings.Replace(base, "Expires:", "CSeq: 2 REGISTER\r\nExpires:", 1), 400, false},
		{"same Content-Length twice", strings.Replace(base, "Expires:", "Content-Length: 0\r\nExpires:", 1), 0, false},
		{"same Content-Length written differently", strings.Replace(base, "Expires:", "l: 00\r\nExpires:", 1), 0, false},
		{"conflicting Content-Length", strings.Replace(base, "Expires:", "l: 5\r\nExpires:", 1) + "hello", 400, true},
	}
	p := sipmsg.NewParser()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := p.ParseSIP([]byte(c.raw))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			v := sipfront.CheckRequest(msg.(*sip.Request))
			switch {
			case c.code == 0 && v != nil:
				t.Fatalf("refused: %+v", v)
			case c.code != 0 && (v == nil || v.Code != c.code || v.Framing != c.framing):
				t.Fatalf("got %+v, want %d framing=%v", v, c.code, c.framing)
			}
		})
	}
}
