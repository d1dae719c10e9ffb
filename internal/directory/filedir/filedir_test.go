package filedir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/dirtest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// toYAML writes fx in the config file schema.
func toYAML(t *testing.T, fx dirtest.Fixture) string {
	t.Helper()
	var hooks, accounts, clients []map[string]any
	for _, a := range fx.Accounts {
		row := map[string]any{
			"account_sid": a.SID, "service_provider_sid": a.ServiceProviderSID, "sip_realm": a.Realm,
			"webhook_secret": a.WebhookSecret, "device_to_call_ratio": a.DeviceToCallRatio, "is_active": a.Active,
			"capacities": map[string]int{"voice_call_session": a.Capacities.VoiceCallSessions, "device": a.Capacities.Devices},
		}
		if a.Hook != nil {
			hooks = append(hooks, map[string]any{"webhook_sid": a.HookSID, "url": a.Hook.URL,
				"method": a.Hook.Method, "username": a.Hook.Username, "password": a.Hook.Password})
			row["registration_hook_sid"] = a.HookSID
		}
		accounts = append(accounts, row)
	}
	for _, c := range fx.Clients {
		clients = append(clients, map[string]any{"client_sid": c.ClientSID, "account_sid": c.AccountSID,
			"username": c.Username, "password": c.Password, "is_active": c.Active,
			"allow_direct_app_calling": c.AllowDirectAppCalling, "allow_direct_queue_calling": c.AllowDirectQueueCalling,
			"allow_direct_user_calling": c.AllowDirectUserCalling})
	}
	out, err := yaml.Marshal(map[string]any{"webhooks": hooks, "accounts": accounts, "clients": clients})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDirectoryContract(t *testing.T) {
	dirtest.Run(t, func(t *testing.T, fx dirtest.Fixture) registrar.Directory {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(toYAML(t, fx)), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := filedir.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestParse_DefaultsAreThoseOfTheSchema(t *testing.T) {
	d, err := filedir.Parse("defaults.yaml", []byte(`
accounts:
  - account_sid: a1
    sip_realm: example.com
clients:
  - account_sid: a1
    username: u
    password: p
webhooks:
  - webhook_sid: w1
    url: http://127.0.0.1/auth
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := d.AccountByRealm(ctx, "example.com")
	if a == nil || !a.Active || a.DeviceToCallRatio != 5 || a.Hook != nil {
		t.Errorf("account = %+v, want active, ratio 5, no hook", a)
	}
	c, _ := d.Client(ctx, "a1", "u")
	if c == nil || !c.Active || !c.AllowDirectAppCalling || !c.AllowDirectQueueCalling || !c.AllowDirectUserCalling {
		t.Errorf("client = %+v, want active and all allow_direct_* true", c)
	}
}

func TestParse_ErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"MissingRealm", "accounts:\n  - account_sid: a1\n", []string{"f.yaml:2: accounts[0].sip_realm: is required"}},
		{"UnknownColumn", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\n    colour: red\n",
			[]string{"f.yaml:4: accounts[0].colour: unknown column"}},
		{"UnknownTable", "users: []\n", []string{"f.yaml:1: users: unknown table"}},
		{"WrongType", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\n    device_to_call_ratio: lots\n",
			[]string{"f.yaml:4: accounts[0].device_to_call_ratio: cannot unmarshal"}},
		{"IPRealm", "accounts:\n  - account_sid: a1\n    sip_realm: 10.0.0.1\n",
			[]string{"f.yaml:3: accounts[0].sip_realm: must be a domain name"}},
		{"DuplicateRealm", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\n  - account_sid: a2\n    sip_realm: X.org\n",
			[]string{`f.yaml:5: accounts[1].sip_realm: "X.org" is already used by accounts[0]`}},
		{"DanglingHook", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\n    registration_hook_sid: w9\n",
			[]string{`f.yaml:4: accounts[0].registration_hook_sid: no webhook has webhook_sid "w9"`}},
		{"BadHookURLAndMethod", "webhooks:\n  - webhook_sid: w1\n    url: ftp://x\n    method: PUT\n",
			[]string{"f.yaml:3: webhooks[0].url: must be an http", "f.yaml:4: webhooks[0].method: must be GET or POST"}},
		{"ClientOfUnknownAccount", "clients:\n  - account_sid: zz\n    username: bob\n    password: p\n",
			[]string{`f.yaml:2: clients[0].account_sid: no account has account_sid "zz"`}},
		{"MalformedEncryptedPassword", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\nclients:\n  - account_sid: a1\n    username: bob\n    password: '{\"iv\": 1}'\n",
			[]string{"f.yaml:7: clients[0].password: looks like JSON"}},
		{"DuplicateClient", "accounts:\n  - account_sid: a1\n    sip_realm: x.org\nclients:\n  - {account_sid: a1, username: bob, password: p}\n  - {account_sid: a1, username: Bob, password: q}\n",
			[]string{`f.yaml:6: clients[1].username: "Bob" is already a client of account a1`}},
		{"GatewayOfUnknownCarrierAndBadProtocol", "sip_gateways:\n  - sip_gateway_sid: g1\n    voip_carrier_sid: c9\n    ipv4: 192.0.2.1\n    protocol: sctp\n",
			[]string{`f.yaml:3: sip_gateways[0].voip_carrier_sid: no carrier`, "f.yaml:5: sip_gateways[0].protocol: must be udp, tcp, tls or tls/srtp"}},
		{"RegisteringCarrierWithoutCredentials", "voip_carriers:\n  - voip_carrier_sid: c1\n    name: c\n    requires_register: true\n",
			[]string{"f.yaml:2: voip_carriers[0].register_username: is required", "f.yaml:2: voip_carriers[0].register_password: is required"}},
		{"NotYAML", "accounts: [\n", []string{"f.yaml: "}},
		{"TopLevelList", "- a\n", []string{"f.yaml:1: (top level): must be a mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := filedir.Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParse_EmptyFileIsAnEmptyDirectory(t *testing.T) {
	d, err := filedir.Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, c, v := d.Counts(); a+c+v != 0 {
		t.Fatalf("counts = %d %d %d", a, c, v)
	}
}

func TestExample_MirrorsPopulateTestData(t *testing.T) {
	d, err := filedir.Load(filepath.Join("..", "..", "..", "examples", "standalone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := d.AccountByRealm(ctx, "jambonz.org")
	if a == nil || a.SID != "ed649e33-e771-403a-8c99-1780eabbc803" || !a.Active || a.WebhookSecret != "foobar" ||
		a.DeviceToCallRatio != 0 || a.Hook == nil || a.Hook.URL != "http://127.0.0.1:4000/auth" ||
		a.Hook.Method != "POST" || a.Hook.Username != "foo" || a.Hook.Password != "bar" {
		t.Errorf("jambonz.org = %+v hook %+v", a, a.Hook)
	}
	if caps, _ := d.Capacities(ctx, a.SID); caps != (registrar.Capacities{VoiceCallSessions: 20, Devices: 2}) {
		t.Errorf("capacities = %+v", caps)
	}
	if a, _ := d.AccountByRealm(ctx, "deactivated.jambonz.org"); a == nil || a.Active {
		t.Errorf("deactivated.jambonz.org = %+v, want inactive", a)
	}
	carriers := d.Carriers()
	if len(carriers) != 1 || len(carriers[0].Gateways) != 1 || carriers[0].Gateways[0].IPv4 != "sip.example.com" {
		t.Errorf("carriers = %+v", carriers)
	}
}

func TestDemo_HasTheAdvertisedUser(t *testing.T) {
	d, err := filedir.Demo()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := d.AccountByRealm(ctx, filedir.DemoRealm)
	if a == nil || a.Hook != nil {
		t.Fatalf("demo account = %+v, want one authenticated by clients", a)
	}
	c, _ := d.Client(ctx, a.SID, filedir.DemoUser)
	if c == nil || c.Password != filedir.DemoPassword || !c.Active {
		t.Fatalf("demo client = %+v", c)
	}
}
