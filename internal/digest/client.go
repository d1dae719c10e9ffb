package digest

import (
	"fmt"
	"strings"
)

// ParsedChallenge is a WWW-Authenticate or Proxy-Authenticate value as a
// registrar sends it to us (client side).
type ParsedChallenge struct {
	Realm     string
	Nonce     string
	Algorithm string // MD5 when absent
	QOP       string // the qop options offered, comma-separated
	Opaque    string
}

// ParseChallenge parses a Digest challenge. realm and nonce are mandatory.
func ParseChallenge(v string) (*ParsedChallenge, error) {
	if len(v) > maxHeader {
		return nil, fmt.Errorf("%w: challenge longer than %d bytes", ErrMalformed, maxHeader)
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "digest") {
		return nil, fmt.Errorf("%w: challenge scheme %q is not Digest", ErrMalformed, scheme)
	}
	p, err := parseParams(rest)
	if err != nil {
		return nil, err
	}
	c := &ParsedChallenge{Realm: p["realm"], Nonce: p["nonce"], Algorithm: p["algorithm"], QOP: p["qop"], Opaque: p["opaque"]}
	if c.Algorithm == "" {
		c.Algorithm = "MD5"
	}
	if c.Nonce == "" {
		return nil, fmt.Errorf("%w: challenge without nonce", ErrMalformed)
	}
	if !Supported(c.Algorithm) {
		return nil, fmt.Errorf("unsupported digest algorithm %q", c.Algorithm)
	}
	return c, nil
}

// Authorize answers challenge c for a request: it returns the Authorization
// (or Proxy-Authorization) header value. qop auth is used when offered;
// auth-int alone is not supported. nc counts requests answered with the same
// nonce (1 for the first).
func (c *ParsedChallenge) Authorize(method, uri, username, password string, nc int) (string, error) {
	cred := &Credentials{
		Username: username, Realm: c.Realm, Nonce: c.Nonce, URI: uri,
		Algorithm: c.Algorithm, Opaque: c.Opaque,
	}
	if c.QOP != "" {
		offered := false
		for _, q := range strings.Split(c.QOP, ",") {
			if strings.EqualFold(strings.TrimSpace(q), "auth") {
				offered = true
			}
		}
		if !offered {
			return "", fmt.Errorf("digest qop %q is not supported", c.QOP)
		}
		cred.QOP = "auth"
		cred.NC = fmt.Sprintf("%08x", nc)
		cred.CNonce = NewNonce()[:16]
	}
	resp, err := Response(cred, method, password)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s`,
		quote(username), quote(c.Realm), quote(c.Nonce), quote(uri), resp, c.Algorithm)
	if cred.QOP != "" {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce="%s"`, cred.NC, cred.CNonce)
	}
	if c.Opaque != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, quote(c.Opaque))
	}
	return b.String(), nil
}

// quoter escapes a quoted-string's backslashes and quotes; built once (a
// Replacer builds its tables on first use, per Replacer).
var quoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func quote(s string) string { return quoter.Replace(s) }
