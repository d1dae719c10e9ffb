package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// repoFile returns the path of a file of this repository (tests run in test/e2e).
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// standaloneEnv is the environment of standalone mode: no MySQL, no Redis.
func standaloneEnv(t *testing.T, listen string) map[string]string {
	return map[string]string{
		"SIP_LISTEN":         listen,
		"SIDECAR_STATE_FILE": filepath.Join(t.TempDir(), "sidecar.state"),
		"SBC_SOCKET_PATH":    filepath.Join(t.TempDir(), "cli.sock"),
		"JAMBONES_LOGLEVEL":  "debug",
	}
}

// savedBindings opens the state file a stopped service left and lists it.
func savedBindings(t *testing.T, path string) map[string]registrar.Binding {
	t.Helper()
	s, err := memstore.Open(memstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestStandalone_RegisterScenarios runs the sipp REGISTER scenarios
// against the binary with neither MySQL nor Redis: accounts from
// examples/standalone.yaml (which mirrors testdata/jambonz-db/test-data.sql),
// registrations in the embedded store.
func TestStandalone_RegisterScenarios(t *testing.T) {
	addr := os.Getenv("TEST_WEBHOOK_ADDR")
	if addr == "" {
		addr = sidecar.DefaultWebhookAddr
	}
	example, err := os.ReadFile(repoFile(t, "examples/standalone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "standalone.yaml")
	text := strings.ReplaceAll(string(example), "http://"+sidecar.DefaultWebhookAddr+"/auth", "http://"+addr+"/auth")
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		transport, sippTransport string
		sipPort, sippPort        int
	}{
		{"udp", "u1", 16510, 16511},
		{"tcp", "t1", 16512, 16513},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			opts := authserver.DefaultOptions()
			opts.WebhookSecret = "foobar"
			hook := authserver.Start(t, addr, opts)
			env := standaloneEnv(t, fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d", tc.sipPort, tc.sipPort))
			proc := sidecar.Start(t, env, "native front listening", "--config", config)
			target := fmt.Sprintf("127.0.0.1:%d", tc.sipPort)
			run := func(scenario, csv string) {
				t.Helper()
				sidecar.Run(t, sidecar.Sipp{Scenario: scenario, CSV: csv, Target: target,
					LocalPort: tc.sippPort, Transport: tc.sippTransport})
			}

			run("uac-register-unknown-realm.xml", "deactivated_account_user.csv")
			run("uac-reject-ipv4-realm.xml", "bad_realm.csv")
			run("uac-register-auth-failure-expect-403.xml", "bad_password.csv")
			run("uac-register-auth-success.xml", "good_user.csv")
			if n := hook.Count(); n != 2 {
				t.Fatalf("webhook calls = %d, want 2 (jane refused, john accepted)", n)
			}
			last := hook.Requests()[1]
			if !last.SignatureValid || !last.BasicOK {
				t.Errorf("webhook call: signature valid=%v basic auth ok=%v", last.SignatureValid, last.BasicOK)
			}
			// Answered from the embedded store's binding: no webhook call.
			run("uac-re-register-auth-success.xml", "good_user.csv")
			if n := hook.Count(); n != 2 {
				t.Errorf("cached re-register called the webhook (%d calls)", n)
			}
			run("uac-register-auth-success-jane.xml", "good_user2.csv")
			run("uac-register-gh-83.xml", "good_user.csv")
			run("uac-unregister-auth-success.xml", "good_user.csv")

			// The clients table of the file: alice has a plain password.
			dir := t.TempDir()
			good, bad := filepath.Join(dir, "alice.csv"), filepath.Join(dir, "alice-bad.csv")
			writeCSV(t, good, "alice", "clients.jambonz.org", "s3cr3t")
			writeCSV(t, bad, "alice", "clients.jambonz.org", "wrong")
			run("uac-register-auth-failure-expect-403.xml", bad)
			run("uac-register-auth-success.xml", good)

			proc.Stop()
			list := savedBindings(t, env["SIDECAR_STATE_FILE"])
			if _, ok := list["john@jambonz.org"]; ok {
				t.Error("john is still bound after un-register")
			}
			jane, ok := list["jane@jambonz.org"]
			if !ok || jane.Protocol != tc.transport || jane.Proxy != fmt.Sprintf("sip:127.0.0.1:%d", tc.sippPort) {
				t.Errorf("jane = %+v (present %v)", jane, ok)
			}
			if d := time.Until(time.UnixMilli(jane.ExpiryTime)); d > 20*time.Second {
				t.Errorf("jane expires in %v, want at most 20s (her webhook cap)", d)
			}
			alice, ok := list["alice@clients.jambonz.org"]
			if !ok || !alice.AllowDirectAppCalling || alice.AllowDirectQueueCalling || !alice.AllowDirectUserCalling {
				t.Errorf("alice = %+v (present %v), want the flags of her clients row", alice, ok)
			}
		})
	}
}

// TestStandalone_DemoModeRegistersAndSurvivesARestart follows the README's
// quick start: no configuration at all, the demo user registers with the
// example sipp scenario, and after a restart the binding is still known.
func TestStandalone_DemoModeRegistersAndSurvivesARestart(t *testing.T) {
	env := standaloneEnv(t, "udp:127.0.0.1:16520,tcp:127.0.0.1:16520")
	proc := sidecar.Start(t, env, "native front listening")
	logs := proc.Logs()
	for _, want := range []string{"DEMO MODE", "demo.localhost", "demo / demo1234", "udp:127.0.0.1:16520", "Loopback only"} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, logs)
		}
	}
	sipp := sidecar.Sipp{Scenario: repoFile(t, "examples/sipp/register.xml"), CSV: repoFile(t, "examples/sipp/demo.csv"),
		Target: "127.0.0.1:16520", LocalPort: 16521}
	sidecar.Run(t, sipp)
	proc.Stop()

	list := savedBindings(t, env["SIDECAR_STATE_FILE"])
	b, ok := list["demo@demo.localhost"]
	if !ok || b.Contact != "sip:sipp@127.0.0.1:16521" || b.SBCAddress != "udp/127.0.0.1:16520,tcp/127.0.0.1:16520" {
		t.Fatalf("saved binding = %+v (present %v)", b, ok)
	}

	// Restarted, the service still has the binding: a REGISTER without
	// credentials from the same source is answered 200 from it.
	sidecar.Start(t, env, "native front listening")
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-re-register-auth-success.xml", CSV: repoFile(t, "examples/sipp/demo.csv"),
		Target: "127.0.0.1:16520", LocalPort: 16521})

	// The README's CLI command lists the binding, for all realms and for one.
	for _, args := range [][]string{{"registrations"}, {"registrations", "demo.localhost"}} {
		out, code := sidecar.CLI(t, env, args...)
		if code != 0 || !strings.Contains(out, "demo@demo.localhost") || !strings.Contains(out, "sip:sipp@127.0.0.1:16521") {
			t.Errorf("cli %v = %d:\n%s", args, code, out)
		}
	}
	if out, _ := sidecar.CLI(t, env, "registrations", "other.realm"); !strings.Contains(out, "No registrations") {
		t.Errorf("cli registrations other.realm:\n%s", out)
	}
}

func TestStandalone_BadConfigFileStopsStartUpNamingLineAndField(t *testing.T) {
	config := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(config, []byte("accounts:\n  - account_sid: a1\n    sip_realm: 10.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sidecar.Binary(t), "--config", config)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SIP_LISTEN=udp:127.0.0.1:16522",
		"SIDECAR_STATE_FILE=" + filepath.Join(t.TempDir(), "state")}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("service started with an invalid config file:\n%s", out)
	}
	if want := config + ":3: accounts[0].sip_realm: must be a domain name"; !strings.Contains(string(out), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
