package registrar_test

import (
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// With the real clients-table authenticator the digest is verified end to
// end: sipp's uri (the target address) is hashed as sent.
func TestRegister_ClientsTableEndToEnd(t *testing.T) {
	cipher, err := credcrypt.New("encryption-secret", false)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := cipher.Encrypt("1234")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stored   string
		active   bool
		password string
		want     int
	}{
		{"plain, right password", "1234", true, "1234", 200},
		{"encrypted, right password", encrypted, true, "1234", 200},
		{"wrong password", "1234", true, "4321", 403},
		{"inactive client", "1234", false, "1234", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			e.dir.clients["john"] = &registrar.Client{Username: "john", Password: tt.stored, Active: tt.active, AllowDirectUserCalling: true}
			e.clients = nil
			e.reg = registrar.New(registrar.Deps{
				Store: e.store, Directory: e.dir, Webhook: e.webhook,
				Clients: auth.NewClients(e.dir, cipher, quietLog()),
				Alerter: e.alerts, Log: quietLog(), Now: e.now(),
			})
			res := e.authorizedWith(t, tt.password)
			expect(t, res, tt.want, nil)
			if tt.want == 403 && res.Get("X-Reason") != "Invalid credentials" {
				t.Fatalf("X-Reason = %q", res.Get("X-Reason"))
			}
			if tt.want == 200 && !e.store.bindings["john@jambonz.org"].AllowDirectUserCalling {
				t.Fatal("client flags not stored")
			}
		})
	}
}
