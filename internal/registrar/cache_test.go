package registrar_test

import (
	"testing"
	"time"
)

func TestRegister_CachedFromSameSource(t *testing.T) {
	e := newEnv()
	e.store.put("john@jambonz.org", phoneSource, 10*time.Minute)
	before := e.store.bindings["john@jambonz.org"]
	res := e.serve(t, register(t, contact("<sip:john@127.0.0.1:5090>;expires=3600")))
	expect(t, res, 200, map[string]string{
		"Expires": "30",
		"Contact": "<sip:john@127.0.0.1:5090>;expires=30",
	})
	if e.authCalls() != 0 {
		t.Fatalf("%d authenticator calls for a cached re-register", e.authCalls())
	}
	if len(e.dir.realms) != 0 {
		t.Fatalf("account looked up for a cached re-register: %v", e.dir.realms)
	}
	if e.store.binds != 0 || e.store.bindings["john@jambonz.org"] != before {
		t.Fatal("cached re-register rewrote the binding")
	}
}

func TestRegister_CachedAddsContactExpires(t *testing.T) {
	e := newEnv()
	e.store.put("john@jambonz.org", phoneSource, 10*time.Minute)
	res := e.serve(t, register(t))
	expect(t, res, 200, map[string]string{"Expires": "30", "Contact": "<sip:john@127.0.0.1:5090>;expires=30"})
}

func TestRegister_CacheNotUsed(t *testing.T) {
	tests := []struct {
		name   string
		stored string        // source of the stored binding
		left   time.Duration // time left on it
		opts   []opt
	}{
		{"other source port", "127.0.0.1:5091", 10 * time.Minute, nil},
		{"other source address", "10.0.0.1:5090", 10 * time.Minute, nil},
		{"less than 30 s left", phoneSource, 29 * time.Second, nil},
		{"exactly 30 s left", phoneSource, 30 * time.Second, nil},
		{"expired", phoneSource, -time.Minute, nil},
		{"unregister", phoneSource, 10 * time.Minute, []opt{expiresHeader("0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.store.put("john@jambonz.org", tt.stored, tt.left)
			res := e.serve(t, register(t, tt.opts...))
			expect(t, res, 401, nil)
			if len(e.dir.realms) == 0 {
				t.Fatal("account not looked up")
			}
		})
	}
}

func TestRegister_CacheReadErrorFallsThrough(t *testing.T) {
	e := newEnv()
	e.store.bindingErr = errStore
	res := e.serve(t, register(t))
	expect(t, res, 401, nil)
}

func TestRegister_CacheIsPerAoR(t *testing.T) {
	e := newEnv()
	e.store.put("alice@jambonz.org", phoneSource, 10*time.Minute)
	res := e.serve(t, register(t))
	expect(t, res, 401, nil)
}
