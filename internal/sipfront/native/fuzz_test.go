package native

import (
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
)

// FuzzLooksLikeSIP: the UDP pre-filter never panics, whatever arrives.
func FuzzLooksLikeSIP(f *testing.F) {
	f.Add([]byte(fronttest.Register("fuzz", "<sip:john@jambonz.org>")))
	f.Add([]byte("REGISTER sip:a SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 1\r\nContent-Length: 2\r\nt: <sip:a@b>\r\nTo: x\r\n\r\nab"))
	f.Fuzz(func(_ *testing.T, data []byte) { _ = looksLikeSIP(data) })
}
