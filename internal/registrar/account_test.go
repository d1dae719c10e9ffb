package registrar_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

func toHost(host string) opt { return set("To", "<sip:john@"+host+">") }

func TestRegister_AccountDeactivated(t *testing.T) {
	e := newEnv()
	e.dir.accounts["jambonz.org"].Active = false
	res := e.serve(t, register(t))
	expect(t, res, 403, map[string]string{"X-Reason": "Account has been deactivated"})
	if e.authCalls() != 0 {
		t.Fatal("authenticated for a deactivated account")
	}
}

func TestRegister_UnknownRealm(t *testing.T) {
	e := newEnv()
	res := e.serve(t, register(t, toHost("unknown.org")))
	expect(t, res, 403, map[string]string{"X-Reason": "Unknown or invalid realm"})
}

func TestRegister_UnknownRealmWhenHosting(t *testing.T) {
	e := newEnv()
	e.hosting = true
	res := e.serve(t, register(t, toHost("unknown.org")))
	expect(t, res, 403, map[string]string{"X-Reason": ""})
	if len(res.Headers) != 0 {
		t.Fatalf("headers %v, want none", res.Headers)
	}
}

func TestRegister_ParentDomainFallback(t *testing.T) {
	tests := []struct {
		host      string
		wantCode  int
		wantCalls []string
	}{
		{"jambonz.org", 401, []string{"jambonz.org"}},
		{"sub.jambonz.org", 401, []string{"sub.jambonz.org", "jambonz.org"}},
		// Only one label is removed.
		{"a.sub.jambonz.org", 403, []string{"a.sub.jambonz.org", "sub.jambonz.org"}},
		// Two labels: no fallback to a TLD.
		{"other.org", 403, []string{"other.org"}},
		{"a.b", 403, []string{"a.b"}},
		{"localhost", 403, []string{"localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			e := newEnv()
			e.dir.accounts["org"] = &registrar.Account{SID: "tld", Active: true}
			e.dir.accounts["b"] = &registrar.Account{SID: "tld-b", Active: true}
			res := e.serve(t, register(t, toHost(tt.host)))
			expect(t, res, tt.wantCode, nil)
			if !reflect.DeepEqual(e.dir.realms, tt.wantCalls) {
				t.Fatalf("lookups = %v, want %v", e.dir.realms, tt.wantCalls)
			}
			if tt.wantCode == 401 && !strings.Contains(res.Get("WWW-Authenticate"), `realm="`+tt.host+`"`) {
				t.Fatalf("challenge %q is not for realm %s", res.Get("WWW-Authenticate"), tt.host)
			}
		})
	}
}

func TestRegister_ParentDomainAccountAuthenticates(t *testing.T) {
	e := newEnv()
	res := e.authorized(t, toHost("sub.jambonz.org"))
	expect(t, res, 200, nil)
	if got := e.clients.calls[0].Account.SID; got != "acct-1" {
		t.Fatalf("authenticated against account %q", got)
	}
	if _, ok := e.store.bindings["john@sub.jambonz.org"]; !ok {
		t.Fatalf("bindings %v, want the AoR as received", e.store.bindings)
	}
}

func TestRegister_DirectoryError(t *testing.T) {
	e := newEnv()
	e.dir.err = errors.New("mysql down")
	res := e.serve(t, register(t))
	expect(t, res, 503, nil)
	if res.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}
