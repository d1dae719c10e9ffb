// Package digest implements the server side of SIP digest authentication
// (RFC 2617, RFC 8760): parsing Authorization headers, building challenges
// and computing the expected response.
package digest

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Credentials are the fields of an Authorization header.
type Credentials struct {
	Scheme    string
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string // MD5 when absent
	QOP       string
	NC        string
	CNonce    string
	Opaque    string
}

// ErrMalformed is returned for Authorization headers that cannot be used.
var ErrMalformed = errors.New("malformed Authorization header")

// maxHeader bounds the work done on hostile input.
const maxHeader = 8192

// ParseAuthorization parses a Digest Authorization (or Proxy-Authorization)
// header value. username, realm, nonce, uri and response are mandatory.
func ParseAuthorization(v string) (*Credentials, error) {
	if len(v) > maxHeader {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxHeader)
	}
	v = strings.TrimSpace(v)
	scheme, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		scheme, rest = v[:i], v[i+1:]
	}
	if !strings.EqualFold(scheme, "digest") {
		return nil, fmt.Errorf("%w: scheme %q is not Digest", ErrMalformed, scheme)
	}
	c := &Credentials{Scheme: "digest"}
	params, err := parseParams(rest)
	if err != nil {
		return nil, err
	}
	for k, val := range params {
		switch k {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = val
		case "algorithm":
			c.Algorithm = val
		case "qop":
			c.QOP = val
		case "nc":
			c.NC = val
		case "cnonce":
			c.CNonce = val
		case "opaque":
			c.Opaque = val
		}
	}
	if c.Algorithm == "" {
		c.Algorithm = "MD5"
	}
	for _, f := range []struct{ name, val string }{
		{"username", c.Username}, {"realm", c.Realm}, {"nonce", c.Nonce},
		{"uri", c.URI}, {"response", c.Response},
	} {
		if f.val == "" {
			return nil, fmt.Errorf("%w: missing %s", ErrMalformed, f.name)
		}
	}
	return c, nil
}

// parseParams splits `k=v, k="quoted, value"` into a map (lower-case keys).
func parseParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == ',' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: parameter without value near %q", ErrMalformed, clip(s[i:]))
		}
		key := strings.ToLower(strings.TrimSpace(s[i : i+eq]))
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var val string
		if i < len(s) && s[i] == '"' {
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if ch == '"' {
					closed = true
					break
				}
				b.WriteByte(ch)
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value for %s", ErrMalformed, key)
			}
			val = b.String()
		} else {
			end := strings.IndexByte(s[i:], ',')
			if end < 0 {
				end = len(s) - i
			}
			val = strings.TrimSpace(s[i : i+end])
			i += end
		}
		if key == "" || strings.ContainsAny(key, " \"") {
			return nil, fmt.Errorf("%w: bad parameter name %q", ErrMalformed, clip(key))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: duplicate parameter %s", ErrMalformed, key)
		}
		out[key] = val
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// hasher returns the hash of a digest algorithm name, nil when unsupported.
func hasher(algorithm string) func() hash.Hash {
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	}
	return nil
}

// Supported reports whether the algorithm can be verified here.
func Supported(algorithm string) bool { return hasher(algorithm) != nil }

func hexHash(h func() hash.Hash, parts ...string) string {
	d := h()
	d.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(d.Sum(nil))
}

// Response computes the expected response for credentials c, the request
// method and the user's password (RFC 2617 3.2.2; qop auth or none).
func Response(c *Credentials, method, password string) (string, error) {
	h := hasher(c.Algorithm)
	if h == nil {
		return "", fmt.Errorf("unsupported digest algorithm %q", c.Algorithm)
	}
	ha1 := hexHash(h, c.Username, c.Realm, password)
	ha2 := hexHash(h, method, c.URI)
	if c.QOP != "" {
		return hexHash(h, ha1, c.Nonce, c.NC, c.CNonce, c.QOP, ha2), nil
	}
	return hexHash(h, ha1, c.Nonce, ha2), nil
}

// Verify reports whether c carries the right response for password.
func Verify(c *Credentials, method, password string) bool {
	want, err := Response(c, method, password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.Response))) == 1
}

// Challenge is a WWW-Authenticate value.
type Challenge struct {
	Realm     string
	Nonce     string
	Algorithm string
	Stale     bool
}

// String formats the challenge as the original does:
// Digest realm="r", algorithm=MD5, qop="auth", nonce="n".
func (c Challenge) String() string {
	alg := c.Algorithm
	if alg == "" {
		alg = "MD5"
	}
	s := fmt.Sprintf(`Digest realm="%s", algorithm=%s, qop="auth", nonce="%s"`, c.Realm, alg, c.Nonce)
	if c.Stale {
		s += ", stale=true"
	}
	return s
}

// NewNonce returns a random nonce.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
