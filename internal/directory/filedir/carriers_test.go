package filedir_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
)

const carriersYAML = `
sip_domain_name: sip.example.net
accounts:
  - {account_sid: a1, sip_realm: one.example.com}
  - {account_sid: a2, sip_realm: two.example.com, is_active: false}
voip_carriers:
  - {voip_carrier_sid: c1, name: sp-carrier, requires_register: true, register_username: u, register_password: p, register_sip_realm: reg.example.com}
  - {voip_carrier_sid: c2, name: account-carrier, account_sid: a1, requires_register: true, register_username: u2, register_password: p2, trunk_type: reg, register_from_all_sbcs: true}
  - {voip_carrier_sid: c3, name: inactive-account, account_sid: a2, requires_register: true, register_username: u, register_password: p}
  - {voip_carrier_sid: c4, name: inactive, is_active: false, requires_register: true, register_username: u, register_password: p}
  - {voip_carrier_sid: c5, name: static}
sip_gateways:
  - {sip_gateway_sid: g1, voip_carrier_sid: c1, ipv4: 192.0.2.1, port: 5070, outbound: true, send_options_ping: true}
  - {sip_gateway_sid: g2, voip_carrier_sid: c1, ipv4: 192.0.2.2, outbound: false, send_options_ping: true}
  - {sip_gateway_sid: g3, voip_carrier_sid: c2, ipv4: gw.example.com, protocol: tcp, outbound: true}
  - {sip_gateway_sid: g4, voip_carrier_sid: c3, ipv4: 192.0.2.4, outbound: true}
  - {sip_gateway_sid: g5, voip_carrier_sid: c4, ipv4: 192.0.2.5, outbound: true}
  - {sip_gateway_sid: g6, voip_carrier_sid: c5, ipv4: 192.0.2.6, outbound: true, send_options_ping: true}
  - {sip_gateway_sid: g7, voip_carrier_sid: c5, ipv4: 192.0.2.7, outbound: true, is_active: false, send_options_ping: true}
`

func loadCarriers(t *testing.T) *filedir.Carriers {
	t.Helper()
	d, err := filedir.Parse("carriers.yaml", []byte(carriersYAML))
	if err != nil {
		t.Fatal(err)
	}
	return filedir.NewCarriers(d, nil)
}

func registerGateways(t *testing.T, c *filedir.Carriers) string {
	t.Helper()
	targets, err := c.RegisterTargets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, tg := range targets {
		sids = append(sids, tg.GatewaySID)
	}
	return strings.Join(sids, ",")
}

func pingGateways(t *testing.T, c *filedir.Carriers) string {
	t.Helper()
	gws, err := c.PingTargets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, g := range gws {
		sids = append(sids, g.GatewaySID)
	}
	return strings.Join(sids, ",")
}

func TestCarriers_RegisterTargetsFollowTheMySQLQuery(t *testing.T) {
	c := loadCarriers(t)
	// Outbound active gateways of active carriers requiring registration
	// whose account is none or active.
	if got := registerGateways(t, c); got != "g1,g3" {
		t.Fatalf("register gateways = %s, want g1,g3", got)
	}
	targets, _ := c.RegisterTargets(context.Background())
	sp, acct := targets[0], targets[1]
	if sp.CarrierSID != "c1" || sp.Host != "192.0.2.1" || sp.Port != 5070 || sp.Protocol != "udp" ||
		sp.Username != "u" || sp.Password != "p" || sp.Realm != "reg.example.com" || sp.AccountRealm != "" || sp.TrunkType != "static_ip" {
		t.Errorf("service-provider target = %+v", sp)
	}
	if sp.AllSBCs || !acct.AllSBCs {
		t.Errorf("register_from_all_sbcs: c1 %v, c2 %v; want false, true", sp.AllSBCs, acct.AllSBCs)
	}
	if acct.AccountRealm != "one.example.com" || acct.TrunkType != "reg" || acct.Protocol != "tcp" || acct.Port != 0 {
		t.Errorf("account target = %+v", acct)
	}
}

func TestCarriers_UpdatesStayInMemory(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name                   string
		update                 func(c *filedir.Carriers) error
		wantRegister, wantPing string
	}{
		{"nothing", func(*filedir.Carriers) error { return nil }, "g1,g3", "g1,g6"},
		{"DisableRegistrationOfANonRegTrunk", func(c *filedir.Carriers) error { return c.DisableRegistration(ctx, "c1", false) }, "g3", "g1,g6"},
		{"DisableRegistrationOfARegTrunk", func(c *filedir.Carriers) error { return c.DisableRegistration(ctx, "c2", true) }, "g1", "g1,g6"},
		{"DisableOptionsPing", func(c *filedir.Carriers) error { return c.DisableOptionsPing(ctx, "g6") }, "g1,g3", "g1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := loadCarriers(t)
			if err := tc.update(c); err != nil {
				t.Fatal(err)
			}
			if got := registerGateways(t, c); got != tc.wantRegister {
				t.Errorf("register gateways = %s, want %s", got, tc.wantRegister)
			}
			if got := pingGateways(t, c); got != tc.wantPing {
				t.Errorf("ping gateways = %s, want %s", got, tc.wantPing)
			}
			// A fresh load (a restart) starts from the file again.
			if got := registerGateways(t, loadCarriers(t)); got != "g1,g3" {
				t.Errorf("after reload: register gateways = %s", got)
			}
		})
	}
}

func TestCarriers_RegisterStatusAndSIPDomain(t *testing.T) {
	ctx := context.Background()
	c := loadCarriers(t)
	if s := c.RegisterStatus("c1"); s != "" {
		t.Fatalf("initial status %q", s)
	}
	if err := c.UpdateRegisterStatus(ctx, "c1", `{"status":"ok"}`); err != nil {
		t.Fatal(err)
	}
	if s := c.RegisterStatus("c1"); s != `{"status":"ok"}` {
		t.Fatalf("status %q", s)
	}
	if d, err := c.SIPDomain(ctx); d != "sip.example.net" || err != nil {
		t.Fatalf("SIPDomain = %q, %v", d, err)
	}
}

func TestParse_SIPDomainNameMustBeADomain(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"Empty", "sip_domain_name: \"\"\n", "x.yaml:1: sip_domain_name: must be a domain name"},
		{"List", "sip_domain_name: [a, b]\n", "x.yaml:1: sip_domain_name: must be a domain name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := filedir.Parse("x.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	d, err := filedir.Parse("x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := filedir.NewCarriers(d, nil).SIPDomain(context.Background()); got != "" {
		t.Fatalf("SIPDomain without the key = %q", got)
	}
}
