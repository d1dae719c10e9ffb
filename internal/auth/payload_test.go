package auth

import (
	"bytes"
	"encoding/json"
	"testing"
)

func payloads() []Payload {
	full := Payload{
		SourceAddress: "192.0.2.10", SourcePort: 5060, Method: "REGISTER", Expires: 3600,
		Scheme: "digest", Username: "john", Realm: "jambonz.org", Nonce: "abc/+=", URI: "sip:jambonz.org",
		Algorithm: "MD5", Response: "0123456789abcdef0123456789abcdef", QOP: "auth", NC: "00000001",
		CNonce: "6b8b4567", Opaque: "op",
		Headers: map[string]string{
			"via":        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport",
			"to":         "<sip:john@jambonz.org>",
			"from":       `"John \"J\" Doe" <sip:john@jambonz.org>;tag=1`,
			"contact":    "<sip:john@192.0.2.10:5060>;expires=3600",
			"x-amp":      "a&b<c>d\\e",
			"x-utf8":     "Zoë ☎ \u2028 \u2029",
			"x-control":  "a\tb\x01c\x7fd",
			"x-invalid":  "bad \xff\xfe utf8",
			"user-agent": "",
		},
	}
	minimal := Payload{Method: "REGISTER"}
	noHeaders := full
	noHeaders.Headers = map[string]string{}
	noQop := full
	noQop.QOP, noQop.NC, noQop.CNonce, noQop.Opaque, noQop.Headers = "", "", "", "", nil
	negative := minimal
	negative.Expires, negative.SourcePort = -1, 65535
	return []Payload{full, minimal, noHeaders, noQop, negative}
}

// The hand-written encoder writes exactly Marshal's bytes: the body is
// signed, and hooks may compare it byte for byte.
func TestPayloadJSON_SameAsMarshal(t *testing.T) {
	for i, p := range payloads() {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("payload %d:\n got %s\nwant %s", i, got, want)
		}
		// Appending to a used buffer keeps what was there.
		if got := p.appendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("payload %d: appended %s", i, got)
		}
	}
}

func FuzzPayloadJSON(f *testing.F) {
	f.Add("john", "jambonz.org", "<sip:john@jambonz.org>", "via", "SIP/2.0/UDP a", "auth", 3600)
	f.Add("\xff", "a&b", "\u2028\x00", "x-\"", "\\", "", -5)
	f.Fuzz(func(t *testing.T, user, realm, hv, hk, hv2, qop string, expires int) {
		p := Payload{Username: user, Realm: realm, QOP: qop, Expires: expires, SourcePort: expires & 0xffff,
			Headers: map[string]string{"to": hv, hk: hv2}}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
