package registrar_test

import "testing"

func TestRegister_RequestURIHostMustBeARealm(t *testing.T) {
	tests := []struct {
		ruri string
		want int
	}{
		{"sip:127.0.0.1", 403},
		{"sip:10.0.0.1:5060", 403},
		{"sip:203.0.113.7;transport=tcp", 403},
		{"sip:jambonz.org", 401},
		{"sip:jambonz.org:5060", 401},
		{"sip:[::1]:5060", 401}, // only IPv4 literals are refused, as the original
	}
	for _, tt := range tests {
		t.Run(tt.ruri, func(t *testing.T) {
			e := newEnv()
			res := e.serve(t, register(t, ruri(tt.ruri)))
			expect(t, res, tt.want, nil)
			if tt.want == 403 {
				if len(e.dir.realms) != 0 || e.store.lookups != 0 || e.authCalls() != 0 {
					t.Fatalf("refused request still did work: realms=%v lookups=%d auth=%d", e.dir.realms, e.store.lookups, e.authCalls())
				}
			}
		})
	}
}
