package registrar_test

import (
	"testing"
	"time"
)

func TestRegister_ContactRequired(t *testing.T) {
	e := newEnv()
	res := e.serve(t, register(t, contact("")))
	expect(t, res, 400, map[string]string{"X-Reason": "Contact header is required for REGISTER requests"})
	if e.store.lookups != 0 || len(e.dir.realms) != 0 {
		t.Fatal("work done for a REGISTER without Contact")
	}
}

func TestRegister_MandatoryHeaders(t *testing.T) {
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, set(name, "")))
			expect(t, res, 400, nil)
		})
	}
}

func TestRegister_ExpiresRequired(t *testing.T) {
	e := newEnv()
	res := e.serve(t, register(t, expiresHeader("")))
	expect(t, res, 400, nil)
	if res.Get("X-Reason") == "" {
		t.Error("400 without X-Reason")
	}
}

func TestRegister_BadExpires(t *testing.T) {
	tests := []struct {
		name string
		opts []opt
	}{
		{"header not a number", []opt{expiresHeader("soon")}},
		{"header negative", []opt{expiresHeader("-1")}},
		{"header fractional", []opt{expiresHeader("1.5")}},
		{"header hex", []opt{expiresHeader("0x10")}},
		{"contact param not a number", []opt{contact("<sip:john@127.0.0.1:5090>;expires=abc")}},
		{"contact param negative", []opt{contact("<sip:john@127.0.0.1:5090>;expires=-5")}},
		{"contact param empty", []opt{contact("<sip:john@127.0.0.1:5090>;expires=")}},
		{"bad contact param wins over a good header", []opt{contact("<sip:john@127.0.0.1:5090>;expires=x"), expiresHeader("3600")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, tt.opts...))
			expect(t, res, 400, nil)
			if e.store.lookups != 0 || len(e.dir.realms) != 0 || e.authCalls() != 0 {
				t.Fatal("work done for a REGISTER with a bad expires")
			}
		})
	}
}

func TestRegister_ContactExpiresParamWins(t *testing.T) {
	e := newEnv()
	e.webhook.grant.Expires = 0
	res := e.authorized(t, transport("tcp"), contact("<sip:john@127.0.0.1:5090>;expires=60"), expiresHeader("3600"))
	expect(t, res, 200, map[string]string{"Expires": "60", "Contact": "<sip:john@127.0.0.1:5090>;expires=60"})
	if ttl := e.store.ttls["john@jambonz.org"]; ttl != 60*time.Second {
		t.Fatalf("ttl = %v, want 60s", ttl)
	}
}

// A phone asking 2^63 s with an authenticator naming no expires gets the
// configured maximum, not a 68-year binding.
func TestRegister_HugeExpiresCappedAtMaximum(t *testing.T) {
	tests := []struct {
		name       string
		max        int
		hook       int
		requested  string
		wantTTL    time.Duration
		wantAnswer string
	}{
		{"2^63, default maximum", 0, 0, "9223372036854775807", time.Hour, "3600"},
		{"configured maximum", 600, 0, "3600", 10 * time.Minute, "600"},
		{"webhook lowers it further", 600, 120, "3600", 2 * time.Minute, "120"},
		{"webhook cannot raise it", 600, 7200, "3600", 10 * time.Minute, "600"},
		{"below the maximum: as requested", 600, 0, "300", 5 * time.Minute, "300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.maxExpires = tt.max
			e.clients.grant.Expires = tt.hook
			res := e.authorized(t, transport("tcp"), expiresHeader(tt.requested))
			expect(t, res, 200, map[string]string{"Expires": tt.wantAnswer})
			if ttl := e.store.ttls["john@jambonz.org"]; ttl != tt.wantTTL {
				t.Fatalf("ttl = %v, want %v", ttl, tt.wantTTL)
			}
		})
	}
}

func TestRegister_MinExpires(t *testing.T) {
	e := newEnv()
	e.minExpires = 60
	res := e.serve(t, register(t, expiresHeader("59")))
	expect(t, res, 423, map[string]string{"Min-Expires": "60"})
	if res.Reason != "Interval Too Brief" {
		t.Errorf("reason = %q", res.Reason)
	}
	expect(t, e.serve(t, register(t, expiresHeader("60"))), 401, nil)
	// Removing a binding is not an interval.
	expect(t, e.serve(t, register(t, expiresHeader("0"))), 401, nil)
}

func TestRegister_InvalidAddressOfRecord(t *testing.T) {
	tests := []string{
		"<sip:john@jambonz.org@jambonz.org>",
		"<sip:jambonz.org>",       // no user
		"<sip:john@jambonz_org>",  // not a host name
		"<sip:john@-jambonz.org>", // label starting with a dash
		"<sip:john@jambonz..org>", // empty label
		"<sip:john@[not-an-ip]>",  // bracketed non-address
		"<sip:john@[10.0.0.1]>",   // bracketed IPv4
	}
	for _, to := range tests {
		t.Run(to, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, set("To", to)))
			expect(t, res, 403, map[string]string{"X-Reason": "Invalid address of record"})
			if e.store.lookups != 0 || len(e.dir.realms) != 0 {
				t.Fatal("work done for an invalid AoR")
			}
		})
	}
}

func TestRegister_AoRIgnoresToPortAndParams(t *testing.T) {
	e := newEnv()
	res := e.authorized(t, set("To", `"John" <sip:john@jambonz.org:5060;transport=udp>;tag=x`))
	expect(t, res, 200, nil)
	if _, ok := e.store.bindings["john@jambonz.org"]; !ok {
		t.Fatalf("bindings = %v, want john@jambonz.org", e.store.bindings)
	}
}

func TestRegister_WildcardContact(t *testing.T) {
	t.Run("star with Expires 0 unregisters", func(t *testing.T) {
		e := newEnv()
		e.store.put("john@jambonz.org", "127.0.0.1:5090", time.Hour)
		res := e.authorized(t, contact("*"), expiresHeader("0"))
		expect(t, res, 200, map[string]string{"Expires": "0"})
		if e.store.unbinds != 1 || e.store.binds != 0 {
			t.Fatalf("unbinds=%d binds=%d", e.store.unbinds, e.store.binds)
		}
		if _, ok := e.store.bindings["john@jambonz.org"]; ok {
			t.Fatal("binding still present")
		}
	})
	for name, opts := range map[string][]opt{
		"star with non-zero Expires":   {contact("*"), expiresHeader("3600")},
		"star without Expires":         {contact("*"), expiresHeader("")},
		"star next to another Contact": {contact("*"), add("Contact", "<sip:john@127.0.0.1:5090>"), expiresHeader("0")},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, opts...))
			expect(t, res, 400, nil)
			if e.store.unbinds != 0 || e.store.binds != 0 {
				t.Fatal("store touched")
			}
		})
	}
}
