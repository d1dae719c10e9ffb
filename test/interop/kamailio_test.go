package interop

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// kamailio is a Kamailio registrar (test/interop/testdata/kamailio.cfg) on udp and tcp.
type kamailio struct {
	port int
	ctl  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

const kamPassword = "carrier-s3cret"

func startKamailio(t *testing.T, port int, sha256 bool) *kamailio {
	t.Helper()
	bin := need(t, "kamailio", "kamailio")
	need(t, "kamcmd", "kamailio")
	if !fileExists("/usr/lib/x86_64-linux-gnu/kamailio/modules/auth.so") {
		unavailable(t, "Kamailio's auth module is missing (Debian package kamailio)")
	}
	cfg, err := filepath.Abs("testdata/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := &kamailio{port: port, ctl: "unix:" + filepath.Join(dir, "ctl"), done: make(chan struct{})}
	args := []string{"-f", cfg, "-DD", "-E", "-P", filepath.Join(dir, "pid"), "-Y", dir,
		"-l", fmt.Sprintf("udp:127.0.0.1:%d", port), "-l", fmt.Sprintf("tcp:127.0.0.1:%d", port),
		"-A", `PASSWORD="` + kamPassword + `"`, "-A", `CTL="` + k.ctl + `"`}
	if sha256 {
		args = append(args, "-A", "WITH_SHA256")
	}
	k.cmd = exec.Command(bin, args...)
	k.cmd.Stdout = writerFunc(func(p []byte) (int, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.out.Write(p)
	})
	k.cmd.Stderr = k.cmd.Stdout
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	go func() { _ = k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		_ = k.cmd.Process.Signal(os.Interrupt)
		select {
		case <-k.done:
		case <-time.After(10 * time.Second):
			_ = k.cmd.Process.Kill()
			<-k.done
		}
		if t.Failed() {
			t.Logf("kamailio on %d:\n%s", port, tail(k.logs(), 80))
		}
	})
	if err := waitFor("kamailio ctl socket", func() (bool, error) {
		_, err := k.ulDump()
		return err == nil, err
	}); err != nil {
		t.Fatalf("kamailio: %v\n%s", err, k.logs())
	}
	return k
}

// kamailioVersion is "Kamailio 5.6.3" from `kamailio -v`, for the report.
func kamailioVersion() string {
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		bin = "/usr/sbin/kamailio"
	}
	out, _ := exec.Command(bin, "-v").Output()
	if m := regexp.MustCompile(`kamailio (\d+\.\d+\.\d+)`).FindSubmatch(out); m != nil {
		return "Kamailio " + string(m[1])
	}
	return "Kamailio"
}

func (k *kamailio) logs() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.String()
}

// ulDump is `kamcmd ul.dump`: Kamailio's own list of registered contacts.
func (k *kamailio) ulDump() (string, error) {
	out, err := exec.Command("kamcmd", "-s", k.ctl, "ul.dump").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kamcmd ul.dump: %v: %s", err, out)
	}
	return string(out), nil
}

// bound reports whether usrloc has a contact for user received over transport.
func (k *kamailio) bound(user, transport string) (bool, error) {
	dump, err := k.ulDump()
	if err != nil {
		return false, err
	}
	i := strings.Index(dump, "AoR: "+user+"\n")
	if i < 0 {
		return false, nil
	}
	rest := dump[i:]
	if j := strings.Index(rest[1:], "AoR: "); j >= 0 {
		rest = rest[:j+1]
	}
	return strings.Contains(rest, "Socket: "+transport+":127.0.0.1:"), nil
}

// carrier is one voip_carriers row with its gateway.
type carrier struct {
	name, user, transport string
	port                  int
	carrierSID, gwSID     string
	sha256                bool
}

// TestCarrier_KamailioRegistrar: regbot registers to Kamailio configured as a registrar with
// digest auth, MD5 and SHA-256 (auth module "algorithm"), over UDP and TCP, in standalone mode
// and with Redis+MySQL; Kamailio answers the gateway OPTIONS pings, so no gateway is
// blacklisted; on shutdown regbot un-registers.
func TestCarrier_KamailioRegistrar(t *testing.T) {
	for _, b := range []backend{standalone, redisMySQL} {
		t.Run(string(b), func(t *testing.T) {
			kamMD5 := startKamailio(t, 16060, false)
			kamSHA := startKamailio(t, 16070, true)
			var carriers []carrier
			for i, c := range []struct {
				sha256    bool
				transport string
			}{{false, "udp"}, {false, "tcp"}, {true, "udp"}, {true, "tcp"}} {
				alg, port := "md5", kamMD5.port
				if c.sha256 {
					alg, port = "sha256", kamSHA.port
				}
				carriers = append(carriers, carrier{name: "kamailio-" + alg + "-" + c.transport,
					user: "regbot-" + alg + "-" + c.transport, transport: c.transport, port: port, sha256: c.sha256,
					carrierSID: fmt.Sprintf("cacacaca-0000-4000-8000-00000000000%d", i+1),
					gwSID:      fmt.Sprintf("cacacaca-1111-4000-8000-00000000000%d", i+1)})
			}
			env, args, rdb := carrierService(t, b, carriers)
			proc := sidecar.Start(t, env, "native front listening", args...)

			for _, c := range carriers {
				k := kamMD5
				if c.sha256 {
					k = kamSHA
				}
				if err := waitFor(c.name+": contact in Kamailio's usrloc", func() (bool, error) {
					return k.bound(c.user, c.transport)
				}); err != nil {
					dump, _ := k.ulDump()
					t.Fatalf("regbot -> %s: step register: %v\nul.dump:\n%s", c.name, err, dump)
				}
				// The authenticated REGISTER as Kamailio logged it, with the Authorization header.
				re := regexp.MustCompile(`interop: REGISTER sip:` + regexp.QuoteMeta(c.user) + `@\S+ from \S+ over ` + c.transport + ` authenticated: ([^\n]*)`)
				// Kamailio logs before it saves, but its log reaches us through a pipe: wait for it.
				var m []string
				_ = waitFor(c.name+": Kamailio's log of the REGISTER", func() (bool, error) {
					m = re.FindStringSubmatch(k.logs())
					return m != nil, nil
				})
				if m != nil {
					t.Logf("regbot -> %s: %s", c.name, m[1])
				}
				switch {
				case m == nil:
					t.Errorf("regbot -> %s: Kamailio logged no authenticated REGISTER", c.name)
				case c.sha256 && !strings.Contains(m[1], "algorithm=SHA-256"):
					t.Errorf("regbot -> %s: Authorization %q, want algorithm=SHA-256", c.name, m[1])
				case !c.sha256 && strings.Contains(m[1], "SHA-256"):
					t.Errorf("regbot -> %s: Authorization %q, want MD5", c.name, m[1])
				}
			}
			// Kamailio stores the contact before regbot reads the 200: wait for regbot too.
			var status string
			if err := waitFor("cli regbot status: Registered: 4", func() (bool, error) {
				status, _ = sidecar.CLI(t, env, "regbot", "status")
				return strings.Contains(status, "Registered: 4"), nil
			}); err != nil {
				t.Errorf("%v:\n%s", err, status)
			}

			// Gateway pings: Kamailio answers each gateway's OPTIONS; the second round of each
			// shows the first was done.
			for _, k := range []*kamailio{kamMD5, kamSHA} {
				for _, tr := range []string{"udp", "tcp"} {
					if err := waitFor(fmt.Sprintf("two OPTIONS over %s to port %d", tr, k.port), func() (bool, error) {
						return strings.Count(k.logs(), " over "+tr+" answered 200") >= 2, nil
					}); err != nil {
						t.Errorf("gateway ping -> kamailio:%d over %s: %v", k.port, tr, err)
					}
				}
			}
			for _, bad := range []string{"pinger: OPTIONS failed", "pinger: OPTIONS answered"} {
				if strings.Contains(proc.Logs(), bad) {
					t.Errorf("gateway ping: service logged %q", bad)
				}
			}
			if rdb != nil {
				for _, c := range carriers {
					if n, _ := rdb.Exists(context.Background(), pinger.BlacklistKey(c.gwSID)).Result(); n != 0 {
						t.Errorf("gateway ping -> %s: gateway blacklisted", c.name)
					}
				}
			}

			proc.Stop()
			for _, c := range carriers {
				k := kamMD5
				if c.sha256 {
					k = kamSHA
				}
				if err := waitFor(c.name+": contact removed from usrloc", func() (bool, error) {
					ok, err := k.bound(c.user, c.transport)
					return err == nil && !ok, err
				}); err != nil {
					t.Errorf("regbot -> %s: step unregister: %v", c.name, err)
				}
			}
			for _, c := range carriers {
				challenge, outcome := "MD5", "ok: registers, un-registers on shutdown; OPTIONS answered 200"
				if c.sha256 {
					challenge = "SHA-256"
				}
				if t.Failed() {
					outcome = "FAILED (see the test log)"
				}
				record(result{section: sectionCarrier, client: "regbot -> " + kamailioVersion(), transport: c.transport, backend: string(b),
					algs: challenge, outcome: outcome})
			}
		})
	}
}

// carrierService prepares the service's environment for carriers in backend b; rdb is set
// with Redis.
func carrierService(t *testing.T, b backend, carriers []carrier) (map[string]string, []string, *redis.Client) {
	t.Helper()
	var env map[string]string
	var args []string
	var rdb *redis.Client
	switch b {
	case standalone:
		var y strings.Builder
		y.WriteString("voip_carriers:\n")
		for _, c := range carriers {
			fmt.Fprintf(&y, "  - {voip_carrier_sid: %s, name: %s, requires_register: true, register_username: %s, register_password: %s, register_sip_realm: carrier.example}\n",
				c.carrierSID, c.name, c.user, kamPassword)
		}
		y.WriteString("sip_gateways:\n")
		for _, c := range carriers {
			fmt.Fprintf(&y, "  - {sip_gateway_sid: %s, voip_carrier_sid: %s, ipv4: 127.0.0.1, port: %d, protocol: %s, outbound: true, send_options_ping: true}\n",
				c.gwSID, c.carrierSID, c.port, c.transport)
		}
		config := filepath.Join(t.TempDir(), "carriers.yaml")
		if err := os.WriteFile(config, []byte(y.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		env = map[string]string{
			"SIDECAR_STATE_FILE": filepath.Join(t.TempDir(), "sidecar.state"),
			"SBC_SOCKET_PATH":    filepath.Join(t.TempDir(), "cli.sock"),
			"JAMBONES_LOGLEVEL":  "debug",
		}
		args = []string{"--config", config}
	case redisMySQL:
		my := testenv.MySQL(t)
		db, err := sql.Open("mysql", my.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for _, c := range carriers {
			if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, ?, 1, ?, 'carrier.example', ?)`, c.carrierSID, c.name, c.user, kamPassword); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, protocol, inbound, outbound, send_options_ping)
  VALUES (?, ?, '127.0.0.1', ?, ?, 0, 1, 1)`, c.gwSID, c.carrierSID, c.port, c.transport); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			for _, c := range carriers {
				_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, c.carrierSID)
				_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, c.carrierSID)
			}
		})
		env = sidecar.BaseEnv(t)
		env["JAMBONES_CLUSTER_ID"] = "interop-carrier"
		env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
		rdb = redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
		t.Cleanup(func() { rdb.Close() })
		rdb.Del(context.Background(), "interop-carrier:regbot-token")
		for _, c := range carriers {
			rdb.Del(context.Background(), pinger.BlacklistKey(c.gwSID))
		}
	}
	env["SIP_LISTEN"] = fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d", portSIP, portSIP)
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	env["SEND_OPTIONS_PING_INTERVAL"] = "1"
	return env, args, rdb
}
