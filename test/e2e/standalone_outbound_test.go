package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// carrierUAS runs sipp as a carrier (a UAS scenario) on ip:port until the
// test ends and returns the file of its message trace.
func carrierUAS(t *testing.T, scenario, ip string, port int) (msgLog string) {
	t.Helper()
	dir := t.TempDir()
	msgLog = filepath.Join(dir, "msg.log")
	cmd := exec.Command(testenv.Sipp(t), "-sf", scenario, "-i", ip, "-p", strconv.Itoa(port), "-t", "u1",
		"-nostdin", "-deadcall_wait", "1", "-trace_msg", "-message_file", msgLog)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("sipp: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return msgLog
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestStandalone_OutboundRegistrationAndGatewayPings runs the binary with
// neither MySQL nor Redis: a carrier of the config file that requires
// registration registers to a sipp carrier (digest foo/bar, the password
// stored encrypted), a gateway with send_options_ping answering 200 is not
// blacklisted while one answering 503 is, in the embedded store.
func TestStandalone_OutboundRegistrationAndGatewayPings(t *testing.T) {
	const secret = "standalone-outbound-secret"
	cipher, err := credcrypt.New(secret, false)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := cipher.Encrypt("bar")
	if err != nil {
		t.Fatal(err)
	}
	registrar := carrierUAS(t, filepath.Join(testenv.ScenarioDir(t), "uas-auth-register.xml"), "127.0.0.60", 16701)
	healthy := carrierUAS(t, repoFile(t, "internal/pinger/testdata/uas-options-200.xml"), "127.0.0.61", 16702)
	carrierUAS(t, repoFile(t, "internal/pinger/testdata/uas-options-503.xml"), "127.0.0.62", 16703)
	time.Sleep(200 * time.Millisecond) // sipp binds before it logs anything

	const (
		regCarrier, regGateway = "c0c0c0c0-0000-4000-8000-000000000001", "c0c0c0c0-0000-4000-8000-000000000002"
		pingCarrier            = "c0c0c0c0-0000-4000-8000-000000000003"
		okGateway, busyGateway = "c0c0c0c0-0000-4000-8000-000000000004", "c0c0c0c0-0000-4000-8000-000000000005"
	)
	config := filepath.Join(t.TempDir(), "outbound.yaml")
	yaml := fmt.Sprintf(`sip_domain_name: sbc.standalone.example
voip_carriers:
  - voip_carrier_sid: %s
    name: registrar
    requires_register: true
    register_username: foo
    register_password: '%s'
    register_sip_realm: sip.jambonz.org
  - voip_carrier_sid: %s
    name: pinged
sip_gateways:
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.60, port: 16701, outbound: true}
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.61, port: 16702, outbound: true, send_options_ping: true}
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.62, port: 16703, outbound: true, send_options_ping: true}
`, regCarrier, encrypted, pingCarrier, regGateway, regCarrier, okGateway, pingCarrier, busyGateway, pingCarrier)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	env := standaloneEnv(t, "udp:127.0.0.1:16700")
	env["ENCRYPTION_SECRET"] = secret
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	env["SEND_OPTIONS_PING_INTERVAL"] = "1"
	proc := sidecar.Start(t, env, "native front listening", "--config", config)

	var status string
	eventuallyTrue(t, 15*time.Second, "cli regbot status: registered 1", func() bool {
		status, _ = sidecar.CLI(t, env, "regbot", "status")
		return strings.Contains(status, "Registered: 1")
	})
	if !strings.Contains(status, "Role:       leader") || !strings.Contains(status, "Agents:     1") {
		t.Errorf("cli regbot status:\n%s", status)
	}
	trace := readFile(registrar)
	// Contact host: no account realm, no public IP asked for: the file's
	// sip_domain_name (system_information in MySQL).
	if !strings.Contains(trace, "Contact: <sip:foo@sbc.standalone.example") || !strings.Contains(trace, "Authorization: Digest") {
		t.Errorf("REGISTER to the carrier lacks the expected Contact or Authorization:\n%s", trace)
	}
	eventuallyTrue(t, 15*time.Second, "both gateways pinged", func() bool {
		return strings.Contains(readFile(healthy), "SIP/2.0 200 OK") &&
			strings.Contains(proc.Logs(), "received: 503")
	})

	proc.Stop()
	logs := proc.Logs()
	if !strings.Contains(logs, "regbot: un-registered") {
		t.Error("no un-registration on shutdown")
	}
	// The embedded store's state file holds the blacklist (Redis' key).
	st, err := memstore.Open(memstore.Options{Path: env["SIDECAR_STATE_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, _ := st.Exists(ctx, pinger.BlacklistKey(okGateway)); n != 0 {
		t.Error("the gateway answering 200 is blacklisted")
	}
	if v, ok, _ := st.Get(ctx, pinger.BlacklistKey(busyGateway)); !ok || v != "1" {
		t.Errorf("the gateway answering 503 is not blacklisted (%q, %v)", v, ok)
	}
	if strings.Contains(logs, "outbound registration and gateway pings") {
		t.Errorf("outbound work reported as not running:\n%s", logs)
	}
}

// TestStandalone_EncryptedClientPasswordAuthenticates: a clients row of the
// config file whose password is stored encrypted the api-server way
// authenticates with the plain password (and not with a wrong one).
func TestStandalone_EncryptedClientPasswordAuthenticates(t *testing.T) {
	const secret = "standalone-clients-secret"
	cipher, err := credcrypt.New(secret, false)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := cipher.Encrypt("s3cr3t-enc")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "clients.yaml")
	yaml := fmt.Sprintf(`accounts:
  - {account_sid: e0e0e0e0-0000-4000-8000-000000000001, sip_realm: enc.example.com}
clients:
  - account_sid: e0e0e0e0-0000-4000-8000-000000000001
    username: bob
    password: '%s'
`, encrypted)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := standaloneEnv(t, "udp:127.0.0.1:16710")
	env["ENCRYPTION_SECRET"] = secret
	proc := sidecar.Start(t, env, "native front listening", "--config", config)

	dir := t.TempDir()
	good, bad := filepath.Join(dir, "bob.csv"), filepath.Join(dir, "bob-bad.csv")
	writeCSV(t, good, "bob", "enc.example.com", "s3cr3t-enc")
	writeCSV(t, bad, "bob", "enc.example.com", encrypted[:20])
	run := func(scenario, csv string, port int) {
		t.Helper()
		sidecar.Run(t, sidecar.Sipp{Scenario: scenario, CSV: csv, Target: "127.0.0.1:16710", LocalPort: port})
	}
	run("uac-register-auth-failure-expect-403.xml", bad, 16711)
	run("uac-register-auth-success.xml", good, 16712)

	proc.Stop()
	if _, ok := savedBindings(t, env["SIDECAR_STATE_FILE"])["bob@enc.example.com"]; !ok {
		t.Error("bob is not bound")
	}
}
