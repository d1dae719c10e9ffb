package digest

import (
	"strings"
	"testing"
)

func TestAuthorize_VerifiesWithServerSide(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
		wantQOP   bool
	}{
		{"md5 without qop", `Digest realm="sip.jambonz.org", nonce="4cdbb733645816512687270b83d2ae5d11e4d9d8"`, false},
		{"md5 with qop auth", `Digest realm="r", algorithm=MD5, qop="auth", nonce="n1", opaque="o"`, true},
		{"sha-256 with qop list", `Digest realm="r", algorithm=SHA-256, qop="auth,auth-int", nonce="n2"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := ParseChallenge(tt.challenge)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ch.Authorize("REGISTER", "sip:sip.jambonz.org", "foo", "bar", 1)
			if err != nil {
				t.Fatal(err)
			}
			cred, err := ParseAuthorization(v)
			if err != nil {
				t.Fatalf("parse %q: %v", v, err)
			}
			if !Verify(cred, "REGISTER", "bar") {
				t.Fatalf("server side rejects %q", v)
			}
			if Verify(cred, "REGISTER", "baz") {
				t.Fatal("wrong password accepted")
			}
			if (cred.QOP == "auth") != tt.wantQOP {
				t.Fatalf("qop = %q", cred.QOP)
			}
			if tt.wantQOP && cred.NC != "00000001" {
				t.Fatalf("nc = %q", cred.NC)
			}
		})
	}
}

func TestParseChallenge_Rejects(t *testing.T) {
	for _, v := range []string{
		`Basic realm="x"`,
		`Digest realm="r"`,
		`Digest realm="r", nonce="n", algorithm=SHA-512-256`,
		`Digest realm="r", nonce="n` + strings.Repeat("x", 9000) + `"`,
	} {
		if _, err := ParseChallenge(v); err == nil {
			t.Errorf("ParseChallenge(%.40q) accepted", v)
		}
	}
}

func TestAuthorize_AuthIntOnlyRefused(t *testing.T) {
	ch, err := ParseChallenge(`Digest realm="r", nonce="n", qop="auth-int"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Authorize("REGISTER", "sip:r", "u", "p", 1); err == nil {
		t.Fatal("auth-int accepted")
	}
}
