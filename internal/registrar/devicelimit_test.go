package registrar_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

func hostingEnv(caps registrar.Capacities) *env {
	e := newEnv()
	e.hosting = true
	e.dir.caps["acct-1"] = caps
	return e
}

func TestRegister_DeviceLimitZero(t *testing.T) {
	e := hostingEnv(registrar.Capacities{})
	res := e.serve(t, register(t))
	if res.Code != 503 || res.Reason != "Max Devices Registered" {
		t.Fatalf("answer %d %q, want 503 Max Devices Registered", res.Code, res.Reason)
	}
	if len(e.alerts.got) != 1 || e.alerts.got[0].Type != "account-device-limit" ||
		e.alerts.got[0].AccountSID != "acct-1" || e.alerts.got[0].Message == "" {
		t.Fatalf("alerts = %+v", e.alerts.got)
	}
	if e.authCalls() != 0 {
		t.Fatal("authenticated over the device limit")
	}
}

func TestRegister_DeviceLimit(t *testing.T) {
	tests := []struct {
		name     string
		caps     registrar.Capacities // ratio of the account is 5
		others   int                  // bindings of other AoRs of the realm
		existing bool                 // john already bound (from another source)
		want     int
	}{
		{"devices only, room left", registrar.Capacities{Devices: 3}, 2, false, 401},
		{"devices only, reached", registrar.Capacities{Devices: 2}, 2, false, 503},
		{"sessions x ratio, room left", registrar.Capacities{VoiceCallSessions: 1}, 4, false, 401},
		{"sessions x ratio, reached", registrar.Capacities{VoiceCallSessions: 1}, 5, false, 503},
		{"sessions x ratio + devices", registrar.Capacities{VoiceCallSessions: 1, Devices: 1}, 5, false, 401},
		{"reached but the AoR is already bound", registrar.Capacities{Devices: 2}, 2, true, 401},
		{"over the limit but the AoR is already bound", registrar.Capacities{Devices: 1}, 5, true, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := hostingEnv(tt.caps)
			for i := 0; i < tt.others; i++ {
				e.store.put("user"+string(rune('a'+i))+"@jambonz.org", "10.0.0.9:5060", time.Hour)
			}
			if tt.existing {
				e.store.put("john@jambonz.org", "10.0.0.8:5060", time.Hour)
			}
			res := e.serve(t, register(t))
			if res.Code != tt.want {
				t.Fatalf("answer %d %q, want %d", res.Code, res.Reason, tt.want)
			}
			if tt.want == 503 {
				if res.Reason != "Max Devices Registered" {
					t.Fatalf("reason %q", res.Reason)
				}
				if len(e.alerts.got) != 1 || e.alerts.got[0].Type != "account-device-limit" {
					t.Fatalf("alerts = %+v", e.alerts.got)
				}
			} else if len(e.alerts.got) != 0 {
				t.Fatalf("alerts = %+v", e.alerts.got)
			}
		})
	}
}

func TestRegister_DeviceLimitExistingAoRRefreshes(t *testing.T) {
	e := hostingEnv(registrar.Capacities{Devices: 1})
	e.store.put("john@jambonz.org", "10.0.0.8:5060", time.Hour) // the phone moved
	res := e.authorized(t)
	expect(t, res, 200, nil)
	if got := e.store.bindings["john@jambonz.org"].Proxy; got != "sip:"+phoneSource {
		t.Fatalf("proxy = %q, want the new source", got)
	}
}

func TestRegister_DeviceLimitNotEnforced(t *testing.T) {
	t.Run("without JAMBONES_HOSTING", func(t *testing.T) {
		e := newEnv()
		e.dir.caps["acct-1"] = registrar.Capacities{}
		expect(t, e.serve(t, register(t)), 401, nil)
		if e.store.countCalls != 0 {
			t.Fatal("devices counted without hosting")
		}
	})
	t.Run("unregister", func(t *testing.T) {
		e := hostingEnv(registrar.Capacities{})
		expect(t, e.serve(t, register(t, expiresHeader("0"))), 401, nil)
	})
	t.Run("capacities unreadable", func(t *testing.T) {
		e := hostingEnv(registrar.Capacities{})
		e.dir.capsErr = errors.New("mysql down")
		expect(t, e.serve(t, register(t)), 401, nil)
	})
}

func TestRegister_DeviceCountError(t *testing.T) {
	e := hostingEnv(registrar.Capacities{Devices: 10})
	e.store.countErr = errStore
	res := e.serve(t, register(t))
	expect(t, res, 503, nil)
	if res.Get("Retry-After") == "" || res.Reason == "Max Devices Registered" {
		t.Fatalf("answer %d %q %v", res.Code, res.Reason, res.Headers)
	}
}
