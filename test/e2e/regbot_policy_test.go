package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestRegbot_RetryPolicyAgainstSippCarriers runs the binary (standalone
// mode, default 300 s failure retry interval) against two sipp carriers: one
// answering 423 Min-Expires: 7200, one 503 Retry-After: 3. The first is
// re-registered at once asking for 7200, the second 3 s later; the
// decisions are logged once each and shown by `cli regbot status`.
func TestRegbot_RetryPolicyAgainstSippCarriers(t *testing.T) {
	brief := sippCarrier(t, "uas-register-423.xml", "u1", "127.0.0.67", 16490)
	busy := sippCarrier(t, "uas-register-503-retry-after.xml", "u1", "127.0.0.68", 16490)
	time.Sleep(200 * time.Millisecond) // sipp binds before it logs anything

	const (
		briefCarrier, briefGateway = "d2d2d2d2-0000-4000-8000-000000000001", "d2d2d2d2-0000-4000-8000-000000000002"
		busyCarrier, busyGateway   = "d2d2d2d2-0000-4000-8000-000000000003", "d2d2d2d2-0000-4000-8000-000000000004"
	)
	config := filepath.Join(t.TempDir(), "carriers.yaml")
	yaml := fmt.Sprintf(`voip_carriers:
  - {voip_carrier_sid: %s, name: brief, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: sip.jambonz.org}
  - {voip_carrier_sid: %s, name: busy, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: sip.jambonz.org}
sip_gateways:
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.67, port: 16490, outbound: true}
  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.68, port: 16490, outbound: true}
`, briefCarrier, busyCarrier, briefGateway, briefCarrier, busyGateway, busyCarrier)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := standaloneEnv(t, "udp:127.0.0.1:16499")
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
	proc := sidecar.Start(t, env, "native front listening", "--config", config)

	// While the 503's Retry-After runs, the CLI shows the decision.
	var status string
	eventuallyTrue(t, 10*time.Second, "cli: retry-after decision", func() bool {
		status, _ = sidecar.CLI(t, env, "regbot", "status")
		return regexp.MustCompile(busyCarrier + `\s.*failed\s+503 Service Unavailable\s+retry-after\s+\S+Z\s`).MatchString(status)
	})
	decided := time.Now()
	eventuallyTrue(t, 20*time.Second, "cli: both registered", func() bool {
		status, _ = sidecar.CLI(t, env, "regbot", "status")
		return strings.Contains(status, "Registered: 2")
	})
	if d := time.Since(decided); d < 2500*time.Millisecond || d > 60*time.Second {
		t.Errorf("503 carrier registered %s after the decision, want about 3 s (not 300)", d)
	}
	if !regexp.MustCompile(briefCarrier + `\s.*registered\s+200 OK\s+refresh\s+\S+\s+7200\s+0`).MatchString(status) {
		t.Errorf("cli regbot status for the 423 carrier:\n%s", status)
	}

	var expires []string
	for _, m := range regexp.MustCompile(`(?m)^Expires: (\d+)`).FindAllStringSubmatch(readFile(brief), -1) {
		expires = append(expires, m[1])
	}
	if len(expires) < 2 || expires[0] != "3600" || expires[1] != "7200" {
		t.Errorf("423 carrier got Expires %v, want 3600 then 7200", expires)
	}
	if n := strings.Count(readFile(busy), "REGISTER sip:sip.jambonz.org SIP/2.0"); n != 2 {
		t.Errorf("503 carrier got %d REGISTERs, want 2", n)
	}
	logs := proc.Logs()
	for _, want := range []string{
		`"msg":"regbot: registration failed"`,
		`"status":423,"decision":"min-expires"`,
		`"status":503,"decision":"retry-after","failures":0,"threshold":3,"retry_in":"3s"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if n := strings.Count(logs, `"decision":"retry-after"`); n != 1 {
		t.Errorf("the retry-after decision was logged %d times, want once", n)
	}
}
