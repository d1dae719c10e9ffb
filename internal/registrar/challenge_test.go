package registrar_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

var challengeRE = regexp.MustCompile(`^Digest realm="jambonz\.org", algorithm=MD5, qop="auth", nonce="([^"\s]+)"$`)

func TestRegister_ChallengeWithoutAuthorization(t *testing.T) {
	e := newEnv()
	res := e.serve(t, register(t))
	expect(t, res, 401, nil)
	// The first (or only) challenge is the original's, byte for byte.
	if got := res.Get("WWW-Authenticate"); !challengeRE.MatchString(got) {
		t.Fatalf("WWW-Authenticate = %q\nwant       Digest realm=\"jambonz.org\", algorithm=MD5, qop=\"auth\", nonce=\"...\"", got)
	}
	if e.authCalls() != 0 || e.store.binds != 0 {
		t.Fatal("work done before the challenge was answered")
	}
}

func challenges(res *sipfront.Response) []string {
	var out []string
	for _, h := range res.Headers {
		if strings.EqualFold(h.Name, "WWW-Authenticate") {
			out = append(out, h.Value)
		}
	}
	return out
}

// The default is one MD5 challenge: JsSIP and baresip (libre) give up when a
// SHA-256 one is offered too.
func TestRegister_DefaultChallengeIsOneMD5(t *testing.T) {
	e := newEnv()
	got := challenges(e.serve(t, register(t)))
	if len(got) != 1 || !challengeRE.MatchString(got[0]) {
		t.Fatalf("challenges = %q, want exactly one MD5 challenge", got)
	}
}

func TestRegister_ConfiguredAlgorithmsInOrder(t *testing.T) {
	e := newEnv()
	e.algs = []string{"SHA-256", "MD5"}
	got := challenges(e.serve(t, register(t)))
	if len(got) != 2 || !strings.Contains(got[0], "algorithm=SHA-256") || !strings.Contains(got[1], "algorithm=MD5") {
		t.Fatalf("challenges = %q, want SHA-256 then MD5", got)
	}
}

func TestRegister_AlgorithmNotOfferedChallengedAgain(t *testing.T) {
	e := newEnv()
	e.algs = []string{"SHA-256"}
	// sippAuthorization answers with MD5, which was not offered.
	res := e.authorized(t)
	expect(t, res, 401, nil)
	if e.authCalls() != 0 {
		t.Fatal("authenticator called with an algorithm that was not offered")
	}
}

func TestRegister_ChallengeNoncesDiffer(t *testing.T) {
	e := newEnv()
	a := challengeRE.FindStringSubmatch(e.serve(t, register(t)).Get("WWW-Authenticate"))
	b := challengeRE.FindStringSubmatch(e.serve(t, register(t)).Get("WWW-Authenticate"))
	if a == nil || b == nil || a[1] == b[1] {
		t.Fatalf("nonces %v and %v", a, b)
	}
}

func TestRegister_MalformedAuthorization(t *testing.T) {
	tests := map[string]string{
		"basic scheme":       "Basic am9objoxMjM0",
		"missing response":   `Digest username="john",realm="jambonz.org",nonce="abc",uri="sip:jambonz.org"`,
		"missing username":   `Digest realm="jambonz.org",nonce="abc",uri="sip:jambonz.org",response="x"`,
		"unterminated quote": `Digest username="john,realm="jambonz.org",nonce="abc",uri="sip:jambonz.org",response="x`,
		"duplicate params":   `Digest username="john",username="bob",realm="jambonz.org",nonce="abc",uri="sip:jambonz.org",response="x"`,
		"garbage":            `!!!`,
		"too long":           `Digest username="` + strings.Repeat("j", 9000) + `",realm="jambonz.org",nonce="abc",uri="u",response="x"`,
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, set("Authorization", h)))
			expect(t, res, 400, nil)
			if e.authCalls() != 0 {
				t.Fatal("authenticator called with a malformed Authorization")
			}
		})
	}
}

func TestRegister_UnknownNonceChallengedAgain(t *testing.T) {
	// A nonce the registrar never issued is answered with a fresh challenge
	// (the original never checked nonces; this is stricter).
	e := newEnv()
	res := e.serve(t, register(t, set("Authorization", sippAuthorization("not-issued-here", "1234"))))
	expect(t, res, 401, nil)
	if !challengeRE.MatchString(res.Get("WWW-Authenticate")) {
		t.Fatalf("WWW-Authenticate = %q", res.Get("WWW-Authenticate"))
	}
	if e.authCalls() != 0 {
		t.Fatal("authenticator called for a nonce that was not issued")
	}
}
