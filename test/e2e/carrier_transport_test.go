package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/carrieruas"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// sippCarrier runs a sipp carrier scenario over transport (u1 or t1) and
// returns its message trace file.
func sippCarrier(t *testing.T, scenario, transport, ip string, port int) string {
	t.Helper()
	scenario = filepath.Join(testenv.ScenarioDir(t), scenario)
	msgLog := filepath.Join(t.TempDir(), "carrier-messages.log")
	uas := exec.Command(testenv.Sipp(t), "-sf", scenario, "-i", ip, "-p", strconv.Itoa(port), "-t", transport,
		"-nostdin", "-deadcall_wait", "1", "-trace_msg", "-message_file", msgLog)
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uas.Process.Kill(); _ = uas.Wait() })
	return msgLog
}

// TestOutbound_TCPTLSAndOutboundProxyCarriers registers the binary
// (standalone mode) to three carriers on loopback: sipp over TCP, a Go
// registrar over TLS (verified with SIP_TLS_CA_FILE), and sipp over UDP
// reached through the carrier's outbound proxy while the gateway's own name
// does not resolve.
func TestOutbound_TCPTLSAndOutboundProxyCarriers(t *testing.T) {
	cert := testenv.SelfSignedCert(t, "")
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsUAS, err := carrieruas.Start(carrieruas.Options{Transport: "tls", Addr: "127.0.0.1:16491",
		TLS: &tls.Config{Certificates: []tls.Certificate{kp}}, Realm: "tls.carrier.example", User: "foo", Password: "bar"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsUAS.Close)
	tcpTrace := sippCarrier(t, "uas-auth-register.xml", "t1", "127.0.0.63", 16490)
	proxyTrace := sippCarrier(t, "uas-auth-register.xml", "u1", "127.0.0.64", 16492)
	time.Sleep(200 * time.Millisecond) // sipp binds before it logs anything

	const (
		tcpCarrier, tcpGateway     = "c1c1c1c1-0000-4000-8000-000000000001", "c1c1c1c1-0000-4000-8000-000000000002"
		tlsCarrier, tlsGateway     = "c1c1c1c1-0000-4000-8000-000000000003", "c1c1c1c1-0000-4000-8000-000000000004"
		proxyCarrier, proxyGateway = "c1c1c1c1-0000-4000-8000-000000000005", "c1c1c1c1-0000-4000-8000-000000000006"
	)
	config := filepath.Join(t.TempDir(), "carriers.yaml")
	yaml := fmt.Sprintf(`sip_domain_name: sbc.transport.example
voip_carriers:
  - {voip_carrier_sid: %s, name: tcp-carrier, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: sip.jambonz.org}
  - {voip_carrier_sid: %s, name: tls-carrier, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: tls.carrier.example}
  - {voip_carrier_sid: %s, name: proxied, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: sip.jambonz.org, outbound_sip_proxy: 'sip:127.0.0.64:16492;lr'}
sip_gateways:
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.63, port: 16490, protocol: tcp, outbound: true}
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.1, port: 16491, protocol: tls, outbound: true}
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: gateway.carrier.invalid, outbound: true}
`, tcpCarrier, tlsCarrier, proxyCarrier, tcpGateway, tcpCarrier, tlsGateway, tlsCarrier, proxyGateway, proxyCarrier)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := standaloneEnv(t, "udp:127.0.0.1:16493,tcp:127.0.0.1:16493")
	env["SIP_TLS_CA_FILE"] = cert.CertFile
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
	proc := sidecar.Start(t, env, "native front listening", "--config", config)

	var status string
	eventuallyTrue(t, 20*time.Second, "cli regbot status: registered 3", func() bool {
		status, _ = sidecar.CLI(t, env, "regbot", "status")
		return strings.Contains(status, "Registered: 3")
	})
	for _, sid := range []string{tcpCarrier, tlsCarrier, proxyCarrier} {
		if !strings.Contains(status, sid) {
			t.Errorf("cli regbot status lacks %s:\n%s", sid, status)
		}
	}

	tcp := readFile(tcpTrace)
	for _, want := range []string{"TCP message received", "Via: SIP/2.0/TCP 127.0.0.1:16493;",
		"Contact: <sip:foo@sbc.transport.example;transport=tcp>", "Authorization: Digest"} {
		if !strings.Contains(tcp, want) {
			t.Errorf("TCP carrier did not receive %q:\n%s", want, tcp)
		}
	}
	reqs := tlsUAS.Requests()
	if len(reqs) < 2 || !strings.Contains(reqs[1].Raw, "Via: SIP/2.0/TLS ") || !strings.Contains(reqs[1].Raw, "Authorization: Digest") {
		t.Errorf("TLS carrier requests: %+v", reqs)
	}
	if b := tlsUAS.Bindings(); len(b) != 1 || b[0] != "sip:foo@sbc.transport.example;transport=tls" {
		t.Errorf("TLS carrier bindings %q", b)
	}
	proxied := readFile(proxyTrace)
	for _, want := range []string{"REGISTER sip:sip.jambonz.org SIP/2.0", "Authorization: Digest"} {
		if !strings.Contains(proxied, want) {
			t.Errorf("outbound proxy did not receive %q:\n%s", want, proxied)
		}
	}

	proc.Stop()
	if got := tlsUAS.Bindings(); len(got) != 0 {
		t.Errorf("TLS binding left after shutdown: %q", got)
	}
}
