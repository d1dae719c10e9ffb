package registrar_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

func TestRegister_GrantedExpires(t *testing.T) {
	tests := []struct {
		name        string
		transport   string
		requested   string
		granted     int // webhook answer, 0 = none
		wantTTL     time.Duration
		wantExpires string
	}{
		{"udp keeps the grant, answers 30", "udp", "3600", 300, 300 * time.Second, "30"},
		{"udp without a grant", "udp", "3600", 0, 3600 * time.Second, "30"},
		{"udp shorter than 30", "udp", "20", 0, 20 * time.Second, "20"},
		{"udp exactly 30", "udp", "30", 0, 30 * time.Second, "30"},
		{"tcp answers the grant", "tcp", "3600", 300, 300 * time.Second, "300"},
		{"tls answers the grant", "tls", "3600", 300, 300 * time.Second, "300"},
		{"ws answers the grant", "ws", "600", 0, 600 * time.Second, "600"},
		{"grant larger than requested is ignored", "tcp", "60", 300, 60 * time.Second, "60"},
		{"grant equal to requested", "tcp", "300", 300, 300 * time.Second, "300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.clients.grant.Expires = tt.granted
			res := e.authorized(t, transport(tt.transport), expiresHeader(tt.requested))
			expect(t, res, 200, map[string]string{
				"Expires": tt.wantExpires,
				"Contact": "<sip:john@127.0.0.1:5090>;expires=" + tt.wantExpires,
			})
			if got := e.store.ttls["john@jambonz.org"]; got != tt.wantTTL {
				t.Fatalf("ttl = %v, want %v", got, tt.wantTTL)
			}
			b := e.store.bindings["john@jambonz.org"]
			if b.ExpiryTime != testNow.Add(tt.wantTTL).UnixMilli() {
				t.Fatalf("expiryTime = %d, want now + %v", b.ExpiryTime, tt.wantTTL)
			}
			if b.Protocol != tt.transport {
				t.Fatalf("protocol = %q", b.Protocol)
			}
		})
	}
}

func TestRegister_BindingContent(t *testing.T) {
	e := newEnv()
	e.dir.accounts["jambonz.org"].Hook = &registrar.Webhook{URL: "https://example.com/auth", Method: "POST"}
	e.webhook.grant = registrar.Grant{Status: 200, OK: true, Expires: 300,
		CallHook: "https://example.com/call", CallStatusHook: "https://example.com/status"}
	req := func(o ...opt) []opt {
		return append([]opt{contact("<sip:john@192.168.1.20:5090;transport=udp;ob>;+sip.instance=\"<urn:uuid:1>\";expires=3600")}, o...)
	}
	res := e.authorized(t, req()...)
	expect(t, res, 200, map[string]string{"Expires": "30"})
	got := e.store.bindings["john@jambonz.org"]
	want := registrar.Binding{
		Contact:        "sip:john@192.168.1.20:5090;transport=udp;ob",
		SBCAddress:     sbcAddress,
		Protocol:       "udp",
		Proxy:          "sip:127.0.0.1:5090",
		CallHook:       "https://example.com/call",
		CallStatusHook: "https://example.com/status",
		ExpiryTime:     testNow.Add(300 * time.Second).UnixMilli(),
		CallID:         "call-1@127.0.0.1",
		CSeq:           2,
	}
	if got != want {
		t.Fatalf("binding =\n %+v\nwant\n %+v", got, want)
	}
	if c := res.Get("Contact"); c != `<sip:john@192.168.1.20:5090;transport=udp;ob>;+sip.instance="<urn:uuid:1>";expires=30` &&
		c != `<sip:john@192.168.1.20:5090;transport=udp;ob>;expires=30;+sip.instance="<urn:uuid:1>"` {
		t.Fatalf("Contact = %q", c)
	}
}

func TestRegister_PrivateSBCAddressStored(t *testing.T) {
	e := newEnv()
	// The front fills PrivateSBCAddress; it must reach the binding.
	first := e.serve(t, register(t))
	m := nonceRE.FindStringSubmatch(first.Get("WWW-Authenticate"))
	req := register(t, set("Authorization", sippAuthorization(m[1], "1234")))
	req.PrivateSBCAddress = "10.0.0.5:5060"
	expect(t, e.serve(t, req), 200, nil)
	if got := e.store.bindings["john@jambonz.org"].PrivateSBCAddress; got != "10.0.0.5:5060" {
		t.Fatalf("privateSbcAddress = %q", got)
	}
}

func TestRegister_DirectCallingFlags(t *testing.T) {
	tr, fa := true, false
	tests := []struct {
		name      string
		client    *registrar.Client // in the directory
		grant     registrar.Grant
		wantFlags [3]bool // app, queue, user
	}{
		{"defaults false", nil, registrar.Grant{Status: 200, OK: true}, [3]bool{}},
		{"from the clients row", &registrar.Client{Username: "john", Active: true, AllowDirectAppCalling: true, AllowDirectUserCalling: true},
			registrar.Grant{Status: 200, OK: true}, [3]bool{true, false, true}},
		{"from the grant's client", nil, registrar.Grant{Status: 200, OK: true, Client: &registrar.Client{AllowDirectQueueCalling: true}},
			[3]bool{false, true, false}},
		{"webhook answer overrides", &registrar.Client{Username: "john", AllowDirectAppCalling: true},
			registrar.Grant{Status: 200, OK: true, AllowDirectAppCalling: &fa, AllowDirectQueueCalling: &tr}, [3]bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			if tt.client != nil {
				e.dir.clients["john"] = tt.client
			}
			e.clients.grant = tt.grant
			expect(t, e.authorized(t), 200, nil)
			b := e.store.bindings["john@jambonz.org"]
			got := [3]bool{b.AllowDirectAppCalling, b.AllowDirectQueueCalling, b.AllowDirectUserCalling}
			if got != tt.wantFlags {
				t.Fatalf("flags = %v, want %v", got, tt.wantFlags)
			}
		})
	}
}

func TestBinding_JSONFieldNames(t *testing.T) {
	keys := func(b registrar.Binding) []string {
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	full := registrar.Binding{Contact: "sip:john@1.2.3.4:5060", SBCAddress: sbcAddress, PrivateSBCAddress: "10.0.0.1:5060",
		Protocol: "udp", Proxy: "sip:1.2.3.4:5060", CallHook: "h", CallStatusHook: "s",
		AllowDirectAppCalling: true, ExpiryTime: 1}
	want := []string{"allow_direct_app_calling", "allow_direct_queue_calling", "allow_direct_user_calling",
		"callHook", "callStatusHook", "contact", "expiryTime", "privateSbcAddress", "protocol", "proxy", "sbcAddress"}
	if got := keys(full); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys = %v\nwant   %v", got, want)
	}
	// Optional fields are omitted, the booleans are always written.
	minimal := registrar.Binding{Contact: "c", SBCAddress: "s", Protocol: "udp", Proxy: "p", ExpiryTime: 1}
	wantMin := []string{"allow_direct_app_calling", "allow_direct_queue_calling", "allow_direct_user_calling",
		"contact", "expiryTime", "protocol", "proxy", "sbcAddress"}
	if got := keys(minimal); !reflect.DeepEqual(got, wantMin) {
		t.Fatalf("keys = %v\nwant   %v", got, wantMin)
	}
	// Types: expiryTime is a number, the flags booleans.
	raw, _ := json.Marshal(full)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if _, ok := m["expiryTime"].(float64); !ok {
		t.Errorf("expiryTime is %T", m["expiryTime"])
	}
	if _, ok := m["allow_direct_app_calling"].(bool); !ok {
		t.Errorf("allow_direct_app_calling is %T", m["allow_direct_app_calling"])
	}
}

func TestRegister_ReRegisterReplacesBinding(t *testing.T) {
	e := newEnv()
	expect(t, e.authorized(t, contact("<sip:john@127.0.0.1:5090>")), 200, nil)
	expect(t, e.authorized(t, from("127.0.0.1:6000"), contact("<sip:john@127.0.0.1:6000>"), set("Call-ID", "call-2")), 200, nil)
	if len(e.store.bindings) != 1 {
		t.Fatalf("bindings = %v", e.store.bindings)
	}
	if b := e.store.bindings["john@jambonz.org"]; b.Contact != "sip:john@127.0.0.1:6000" || b.Proxy != "sip:127.0.0.1:6000" {
		t.Fatalf("binding = %+v", b)
	}
}

func TestRegister_Unregister(t *testing.T) {
	for name, opts := range map[string][]opt{
		"Expires header 0":  {expiresHeader("0")},
		"Contact expires=0": {contact("<sip:john@127.0.0.1:5090>;expires=0"), expiresHeader("3600")},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv()
			e.store.put("john@jambonz.org", phoneSource, time.Hour)
			res := e.authorized(t, opts...)
			expect(t, res, 200, map[string]string{"Expires": "0"})
			if e.store.unbinds != 1 || e.store.binds != 0 {
				t.Fatalf("unbinds=%d binds=%d", e.store.unbinds, e.store.binds)
			}
			if _, ok := e.store.bindings["john@jambonz.org"]; ok {
				t.Fatal("binding still present")
			}
		})
	}
}

func TestRegister_StoreErrors(t *testing.T) {
	t.Run("bind", func(t *testing.T) {
		e := newEnv()
		e.store.bindErr = errStore
		res := e.authorized(t)
		expect(t, res, 503, nil)
		if res.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})
	t.Run("unbind", func(t *testing.T) {
		e := newEnv()
		e.store.unbindErr = errStore
		res := e.authorized(t, expiresHeader("0"))
		expect(t, res, 503, nil)
		if res.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})
}

// RFC 3261 §10.3: within the Call-ID that wrote the binding, a REGISTER
// whose CSeq is not higher is out of order and changes nothing.
func TestRegister_OutOfOrderCSeqRefused(t *testing.T) {
	tests := []struct {
		name     string
		opts     []opt
		wantCode int
	}{
		{"same Call-ID, same CSeq", []opt{set("CSeq", "2 REGISTER"), contact("<sip:john@127.0.0.1:7000>")}, 500},
		{"same Call-ID, lower CSeq", []opt{set("CSeq", "1 REGISTER"), contact("<sip:john@127.0.0.1:7000>")}, 500},
		{"same Call-ID, lower CSeq, unregister", []opt{set("CSeq", "1 REGISTER"), expiresHeader("0")}, 500},
		{"same Call-ID, higher CSeq", []opt{set("CSeq", "3 REGISTER"), contact("<sip:john@127.0.0.1:7000>")}, 200},
		{"another Call-ID, lower CSeq", []opt{set("CSeq", "1 REGISTER"), set("Call-ID", "other"), contact("<sip:john@127.0.0.1:7000>")}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			expect(t, e.authorized(t), 200, nil) // Call-ID call-1@127.0.0.1, CSeq 2
			before := e.store.bindings["john@jambonz.org"]
			// The request authenticates with a fresh nonce, as a replayed or
			// delayed REGISTER of the phone itself would.
			n := e.challengeNonce(t, contact("<sip:john@127.0.0.1:7000>")) // not answered from cache
			opts := append([]opt{set("Authorization", sippAuthorization(n, "1234"))}, tt.opts...)
			res := e.serve(t, register(t, opts...))
			if tt.wantCode == 500 {
				expect(t, res, 500, map[string]string{"X-Reason": registrar.ReasonOutOfOrder})
				if got, ok := e.store.bindings["john@jambonz.org"]; !ok || got != before {
					t.Fatalf("binding changed: %+v, was %+v", got, before)
				}
				return
			}
			expect(t, res, 200, nil)
		})
	}
}
