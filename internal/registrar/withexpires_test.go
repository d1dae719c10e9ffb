package registrar

import (
	"regexp"
	"strconv"
	"testing"
)

// oracleExpiresRE is what withExpires replaced with a regular expression.
var oracleExpiresRE = regexp.MustCompile(`(?i)expires=\d+`)

func oracleWithExpires(contact string, expires int) string {
	if oracleExpiresRE.MatchString(contact) {
		return oracleExpiresRE.ReplaceAllString(contact, "expires="+strconv.Itoa(expires))
	}
	return contact + ";expires=" + strconv.Itoa(expires)
}

func TestWithExpires_SameAsRegexp(t *testing.T) {
	for _, c := range []string{
		"<sip:john@192.0.2.10:5060>",
		"<sip:john@192.0.2.10:5060>;expires=3600",
		"<sip:john@192.0.2.10:5060>;EXPIRES=3600;q=0.5",
		"<sip:john@192.0.2.10:5060;x-expires=7>;Expires=3600",
		"<sip:john@h>;expires=",
		"<sip:john@h>;expires=abc",
		"<sip:john@h>;expires=12;expires=34",
		"<sip:john@h>;expires=expires=5",
		"<sip:john@h>;expires=0",
		"expires=1",
		"expires=",
		"",
		"<sip:jöhn@h>;expireſ=5",
		"<sip:jöhn@h>;expires=5",
		"<sip:jöhn@h>",
	} {
		for _, e := range []int{0, 60, 3600} {
			if got, want := withExpires(c, e), oracleWithExpires(c, e); got != want {
				t.Errorf("withExpires(%q, %d) = %q, want %q", c, e, got, want)
			}
		}
	}
}

func FuzzWithExpires(f *testing.F) {
	f.Add("<sip:john@192.0.2.10:5060>;expires=3600", 60)
	f.Add("<sip:a@b>;EXPIRES=1;x-expires=22", 0)
	f.Add("<sip:a@b>;expireſ=5", 7)
	f.Fuzz(func(t *testing.T, c string, e int) {
		if got, want := withExpires(c, e), oracleWithExpires(c, e); got != want {
			t.Fatalf("withExpires(%q, %d) = %q, want %q", c, e, got, want)
		}
	})
}
