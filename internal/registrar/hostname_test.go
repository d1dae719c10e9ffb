package registrar

import (
	"regexp"
	"testing"
)

// hostnameRE is the expression isHostname replaced; the tests hold the two
// to the same answers.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

var hostnameCases = []string{
	"", ".", "..", "a", "a.", "a..", ".a", "a.b", "a.b.", "a..b", "-", "a-", "-a", "a-b", "a--b",
	"sip.example.com", "SIP.Example.COM.", "192.0.2.1", "192.0.2.1.", "a_b", "a b", "a.-b", "a.b-",
	"xn--bcher-kva.example", "1", "1-", "é.example", "a\x00", "a.b.c.d.e.f", "ab.c-d.e9",
}

func TestIsHostname_AsTheRegexp(t *testing.T) {
	for _, h := range hostnameCases {
		if got, want := isHostname(h), hostnameRE.MatchString(h); got != want {
			t.Errorf("isHostname(%q) = %v, the regexp says %v", h, got, want)
		}
	}
}

func FuzzIsHostname(f *testing.F) {
	for _, h := range hostnameCases {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := isHostname(h), hostnameRE.MatchString(h); got != want {
			t.Fatalf("isHostname(%q) = %v, the regexp says %v", h, got, want)
		}
	})
}
