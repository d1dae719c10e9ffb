package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"regexp"
	"strings"
	"testing"
)

// independent computes a digest response from scratch (RFC 2617 3.2.2,
// RFC 7616 3.4.1) so the tests do not trust the code under test.
func independent(h func() hash.Hash, user, realm, pass, method, uri, nonce, nc, cnonce, qop string) string {
	hx := func(s string) string {
		d := h()
		d.Write([]byte(s))
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := hx(user + ":" + realm + ":" + pass)
	ha2 := hx(method + ":" + uri)
	if qop == "" {
		return hx(ha1 + ":" + nonce + ":" + ha2)
	}
	return hx(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
}

func TestResponse_KnownVectors(t *testing.T) {
	tests := []struct {
		name     string
		creds    Credentials
		method   string
		password string
		want     string
	}{
		{
			// RFC 2617 section 3.5.
			name: "rfc2617 md5 qop auth",
			creds: Credentials{Username: "Mufasa", Realm: "testrealm@host.com",
				Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", URI: "/dir/index.html",
				QOP: "auth", NC: "00000001", CNonce: "0a4f113b", Algorithm: "MD5"},
			method: "GET", password: "Circle Of Life",
			want: "6629fae49393a05397450978507c4ef1",
		},
		{
			// RFC 7616 section 3.9.1, MD5 variant.
			name: "rfc7616 md5",
			creds: Credentials{Username: "Mufasa", Realm: "http-auth@example.org",
				Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", URI: "/dir/index.html",
				QOP: "auth", NC: "00000001", CNonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", Algorithm: "MD5"},
			method: "GET", password: "Circle of Life",
			want: "8ca523f5e9506fed4657c9700eebdbec",
		},
		{
			// RFC 7616 section 3.9.1, SHA-256 variant.
			name: "rfc7616 sha-256",
			creds: Credentials{Username: "Mufasa", Realm: "http-auth@example.org",
				Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", URI: "/dir/index.html",
				QOP: "auth", NC: "00000001", CNonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", Algorithm: "SHA-256"},
			method: "GET", password: "Circle of Life",
			want: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
		},
		{
			name: "sha-256 algorithm name is case-insensitive",
			creds: Credentials{Username: "john", Realm: "jambonz.org", Nonce: "n1", URI: "sip:jambonz.org",
				QOP: "auth", NC: "00000002", CNonce: "c", Algorithm: "sha-256"},
			method: "REGISTER", password: "secret",
			want: independent(sha256.New, "john", "jambonz.org", "secret", "REGISTER", "sip:jambonz.org", "n1", "00000002", "c", "auth"),
		},
		{
			// RFC 2069 style: no qop, response = H(HA1:nonce:HA2).
			name: "md5 without qop",
			creds: Credentials{Username: "john", Realm: "jambonz.org", Nonce: "abc",
				URI: "sip:jambonz.org"},
			method: "REGISTER", password: "1234",
			want: independent(md5.New, "john", "jambonz.org", "1234", "REGISTER", "sip:jambonz.org", "abc", "", "", ""),
		},
		{
			name: "empty algorithm means md5",
			creds: Credentials{Username: "john", Realm: "jambonz.org", Nonce: "abc",
				URI: "sip:127.0.0.1:5060", QOP: "auth", NC: "00000001", CNonce: "6b8b4567"},
			method: "REGISTER", password: "1234",
			want: independent(md5.New, "john", "jambonz.org", "1234", "REGISTER", "sip:127.0.0.1:5060", "abc", "00000001", "6b8b4567", "auth"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Response(&tt.creds, tt.method, tt.password)
			if err != nil {
				t.Fatalf("Response: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Response = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestResponse_IndependentSHA256MatchesRFC7616(t *testing.T) {
	// Cross-check the hard-coded RFC value with the independent computation.
	got := independent(sha256.New, "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
		"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth")
	if got != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Fatalf("independent sha-256 = %s", got)
	}
}

func TestResponse_UnsupportedAlgorithm(t *testing.T) {
	for _, alg := range []string{"SHA-512-256", "MD5-sess", "SHA-256-sess", "bogus"} {
		t.Run(alg, func(t *testing.T) {
			c := &Credentials{Username: "u", Realm: "r", Nonce: "n", URI: "u", Response: "x", Algorithm: alg}
			if _, err := Response(c, "REGISTER", "p"); err == nil {
				t.Fatalf("Response with %s: want error", alg)
			}
			if Supported(alg) {
				t.Fatalf("Supported(%s) = true", alg)
			}
			if Verify(c, "REGISTER", "p") {
				t.Fatalf("Verify with %s = true", alg)
			}
		})
	}
	for _, alg := range []string{"", "MD5", "md5", "SHA-256", "sha-256"} {
		if !Supported(alg) {
			t.Errorf("Supported(%q) = false", alg)
		}
	}
}

func TestVerify(t *testing.T) {
	base := Credentials{Username: "Mufasa", Realm: "testrealm@host.com",
		Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", URI: "/dir/index.html",
		QOP: "auth", NC: "00000001", CNonce: "0a4f113b", Algorithm: "MD5"}
	const good = "6629fae49393a05397450978507c4ef1"
	tests := []struct {
		name     string
		mutate   func(c *Credentials)
		method   string
		password string
		want     bool
	}{
		{"right password", func(c *Credentials) { c.Response = good }, "GET", "Circle Of Life", true},
		{"upper-case response accepted", func(c *Credentials) { c.Response = strings.ToUpper(good) }, "GET", "Circle Of Life", true},
		{"mixed-case response accepted", func(c *Credentials) { c.Response = "6629FAE49393a05397450978507C4EF1" }, "GET", "Circle Of Life", true},
		{"wrong password", func(c *Credentials) { c.Response = good }, "GET", "circle of life", false},
		{"wrong method", func(c *Credentials) { c.Response = good }, "REGISTER", "Circle Of Life", false},
		{"tampered nonce", func(c *Credentials) { c.Response = good; c.Nonce += "x" }, "GET", "Circle Of Life", false},
		{"tampered nc", func(c *Credentials) { c.Response = good; c.NC = "00000002" }, "GET", "Circle Of Life", false},
		{"tampered uri", func(c *Credentials) { c.Response = good; c.URI = "/other" }, "GET", "Circle Of Life", false},
		{"truncated response", func(c *Credentials) { c.Response = good[:31] }, "GET", "Circle Of Life", false},
		{"empty response", func(c *Credentials) { c.Response = "" }, "GET", "Circle Of Life", false},
		{"response with trailing space", func(c *Credentials) { c.Response = good + " " }, "GET", "Circle Of Life", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			if got := Verify(&c, tt.method, tt.password); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	sipp := `Digest username="john",realm="jambonz.org",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="0123456789abcdef0123456789abcdef",algorithm=MD5`
	tests := []struct {
		name    string
		in      string
		want    *Credentials // nil: an error is expected
		errText string       // substring of the error, when want is nil
	}{
		{
			name: "sipp style",
			in:   sipp,
			want: &Credentials{Scheme: "digest", Username: "john", Realm: "jambonz.org", CNonce: "6b8b4567",
				NC: "00000001", QOP: "auth", URI: "sip:127.0.0.1:5060", Nonce: "abc",
				Response: "0123456789abcdef0123456789abcdef", Algorithm: "MD5"},
		},
		{
			name: "spaces after commas, lower-case scheme, no algorithm",
			in:   `digest username="alice", realm="sip.example.com", nonce="n", uri="sip:sip.example.com", response="r", opaque="op"`,
			want: &Credentials{Scheme: "digest", Username: "alice", Realm: "sip.example.com", Nonce: "n",
				URI: "sip:sip.example.com", Response: "r", Algorithm: "MD5", Opaque: "op"},
		},
		{
			name: "leading and trailing whitespace, upper-case scheme and keys",
			in:   "  DIGEST USERNAME=\"bob\", Realm=\"r\", NONCE=\"n\", Uri=\"u\", RESPONSE=\"x\", Algorithm=SHA-256  ",
			want: &Credentials{Scheme: "digest", Username: "bob", Realm: "r", Nonce: "n", URI: "u", Response: "x", Algorithm: "SHA-256"},
		},
		{
			name: "quoted commas and equals signs stay in the value",
			in:   `Digest username="a,b=c", realm="r", nonce="x,y", uri="sip:u@h;p=1,2", response="z"`,
			want: &Credentials{Scheme: "digest", Username: "a,b=c", Realm: "r", Nonce: "x,y", URI: "sip:u@h;p=1,2", Response: "z", Algorithm: "MD5"},
		},
		{
			name: "escaped quotes and backslashes",
			in:   `Digest username="say \"hi\"", realm="back\\slash", nonce="n", uri="u", response="r"`,
			want: &Credentials{Scheme: "digest", Username: `say "hi"`, Realm: `back\slash`, Nonce: "n", URI: "u", Response: "r", Algorithm: "MD5"},
		},
		{
			name: "unquoted values and unknown parameters ignored",
			in:   `Digest username=john, realm=jambonz.org, nonce=abc, uri=sip:jambonz.org, response=ff, foo="bar", qop=auth, nc=00000001, cnonce=c1`,
			want: &Credentials{Scheme: "digest", Username: "john", Realm: "jambonz.org", Nonce: "abc", URI: "sip:jambonz.org",
				Response: "ff", Algorithm: "MD5", QOP: "auth", NC: "00000001", CNonce: "c1"},
		},
		{name: "missing username", in: `Digest realm="r", nonce="n", uri="u", response="r"`, errText: "missing username"},
		{name: "missing realm", in: `Digest username="u", nonce="n", uri="u", response="r"`, errText: "missing realm"},
		{name: "missing nonce", in: `Digest username="u", realm="r", uri="u", response="r"`, errText: "missing nonce"},
		{name: "missing uri", in: `Digest username="u", realm="r", nonce="n", response="r"`, errText: "missing uri"},
		{name: "missing response", in: `Digest username="u", realm="r", nonce="n", uri="u"`, errText: "missing response"},
		{name: "empty quoted username", in: `Digest username="", realm="r", nonce="n", uri="u", response="r"`, errText: "missing username"},
		{name: "basic scheme", in: `Basic am9objoxMjM0`, errText: "not Digest"},
		{name: "bearer scheme", in: `Bearer username="u", realm="r", nonce="n", uri="u", response="r"`, errText: "not Digest"},
		{name: "empty", in: ``, errText: "not Digest"},
		{name: "scheme only", in: `Digest`, errText: "missing username"},
		{name: "unterminated quote", in: `Digest realm="r", nonce="n", uri="u", response="r", username="john`, errText: "unterminated"},
		{name: "quote swallowing the next parameter", in: `Digest username="john, realm="r", nonce="n", uri="u", response="r`, errText: "malformed"},
		{name: "trailing backslash inside quotes", in: `Digest username="u", realm="r", nonce="n", uri="u", response="r\`, errText: "unterminated"},
		{name: "duplicate parameter", in: `Digest username="a", username="b", realm="r", nonce="n", uri="u", response="r"`, errText: "duplicate"},
		{name: "duplicate parameter differing in case", in: `Digest username="a", USERNAME="b", realm="r", nonce="n", uri="u", response="r"`, errText: "duplicate"},
		{name: "parameter without value", in: `Digest realm="r", nonce="n", uri="u", response="r", username`, errText: "without value"},
		{name: "bare word before parameters", in: `Digest username, realm="r", nonce="n", uri="u", response="r"`, errText: "bad parameter name"},
		{name: "empty parameter name", in: `Digest ="x", username="u", realm="r", nonce="n", uri="u", response="r"`, errText: "without value"},
		{name: "longer than 8KB", in: `Digest username="` + strings.Repeat("a", 8200) + `", realm="r", nonce="n", uri="u", response="r"`, errText: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthorization(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseAuthorization = %+v, want error containing %q", got, tt.errText)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAuthorization: %v", err)
			}
			if *got != *tt.want {
				t.Fatalf("ParseAuthorization =\n %+v\nwant\n %+v", *got, *tt.want)
			}
		})
	}
}

func TestParseAuthorization_ExactlyAtLimit(t *testing.T) {
	prefix := `Digest realm="r", nonce="n", uri="u", response="r", username="`
	in := prefix + strings.Repeat("a", maxHeader-len(prefix)-1) + `"`
	if len(in) != maxHeader {
		t.Fatalf("test input is %d bytes", len(in))
	}
	c, err := ParseAuthorization(in)
	if err != nil {
		t.Fatalf("ParseAuthorization of %d bytes: %v", len(in), err)
	}
	if len(c.Username) != maxHeader-len(prefix)-1 {
		t.Fatalf("username length %d", len(c.Username))
	}
	if _, err := ParseAuthorization(in + " "); err == nil {
		t.Fatalf("ParseAuthorization of %d bytes: want error", len(in)+1)
	}
}

func TestParseAuthorization_RoundTripVerifies(t *testing.T) {
	// A header built the way sipp builds it verifies with the right password.
	c := &Credentials{Username: "john", Realm: "jambonz.org", Nonce: "abc", URI: "sip:127.0.0.1:5060",
		QOP: "auth", NC: "00000001", CNonce: "6b8b4567", Algorithm: "MD5"}
	resp, err := Response(c, "REGISTER", "1234")
	if err != nil {
		t.Fatal(err)
	}
	h := `Digest username="john",realm="jambonz.org",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="` + resp + `",algorithm=MD5`
	parsed, err := ParseAuthorization(h)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(parsed, "REGISTER", "1234") {
		t.Fatal("Verify(right password) = false")
	}
	if Verify(parsed, "REGISTER", "12345") {
		t.Fatal("Verify(wrong password) = true")
	}
}

func TestChallenge_String(t *testing.T) {
	tests := []struct {
		name string
		c    Challenge
		want string
	}{
		{"default algorithm", Challenge{Realm: "r", Nonce: "n"}, `Digest realm="r", algorithm=MD5, qop="auth", nonce="n"`},
		{"explicit md5", Challenge{Realm: "jambonz.org", Nonce: "abc123", Algorithm: "MD5"}, `Digest realm="jambonz.org", algorithm=MD5, qop="auth", nonce="abc123"`},
		{"sha-256", Challenge{Realm: "r", Nonce: "n", Algorithm: "SHA-256"}, `Digest realm="r", algorithm=SHA-256, qop="auth", nonce="n"`},
		{"stale", Challenge{Realm: "r", Nonce: "n", Stale: true}, `Digest realm="r", algorithm=MD5, qop="auth", nonce="n", stale=true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.String(); got != tt.want {
				t.Fatalf("String() = %s\nwant       %s", got, tt.want)
			}
		})
	}
}

func TestChallenge_ParsesBackAsParams(t *testing.T) {
	s := Challenge{Realm: "jambonz.org", Nonce: NewNonce()}.String()
	params, err := parseParams(strings.TrimPrefix(s, "Digest "))
	if err != nil {
		t.Fatal(err)
	}
	if params["realm"] != "jambonz.org" || params["qop"] != "auth" || params["algorithm"] != "MD5" || params["nonce"] == "" {
		t.Fatalf("params = %v", params)
	}
}

func TestNewNonce_RandomHex(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		n := NewNonce()
		if !re.MatchString(n) {
			t.Fatalf("nonce %q is not 32 hex characters", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[n] = true
	}
}
