package digest

import (
	"strings"
	"testing"
)

// FuzzParseAuthorization checks that hostile Authorization headers never
// panic and that accepted ones always carry the mandatory fields.
// Seeds live in testdata/fuzz/FuzzParseAuthorization.
func FuzzParseAuthorization(f *testing.F) {
	f.Add(`Digest username="john",realm="jambonz.org",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="0123456789abcdef0123456789abcdef",algorithm=MD5`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseAuthorization(in)
		if err != nil {
			if c != nil {
				t.Fatalf("error %v with non-nil credentials", err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil credentials without error")
		}
		for name, v := range map[string]string{
			"username": c.Username, "realm": c.Realm, "nonce": c.Nonce,
			"uri": c.URI, "response": c.Response, "algorithm": c.Algorithm,
		} {
			if v == "" {
				t.Fatalf("accepted %q with empty %s", in, name)
			}
		}
		if c.Scheme != "digest" {
			t.Fatalf("scheme %q", c.Scheme)
		}
		if len(in) > maxHeader {
			t.Fatalf("accepted %d bytes", len(in))
		}
		if !strings.EqualFold(strings.Fields(in)[0], "digest") {
			t.Fatalf("accepted scheme of %q", in)
		}
		// Whatever was accepted can be verified without panicking.
		_ = Verify(c, "REGISTER", "secret")
	})
}
