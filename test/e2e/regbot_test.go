package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestRegbot_TwoInstancesOneLeaderTakeover runs two services against the
// same Redis and MySQL with a sipp carrier: exactly one registers; when it
// stops (un-registering) the other takes over within a status interval.
func TestRegbot_TwoInstancesOneLeaderTakeover(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	const cluster = "e2e-regbot"
	rdb.Del(ctx, cluster+":regbot-token")

	// The carrier: sipp challenging, then accepting foo/bar.
	scenario, _ := filepath.Abs("testdata/uas-auth-register-no-timewait.xml")
	msgLog := filepath.Join(t.TempDir(), "msg.log")
	uas := exec.Command(testenv.Sipp(t), "-sf", scenario, "-i", "127.0.0.49", "-p", "16440", "-t", "u1",
		"-nostdin", "-deadcall_wait", "1", "-trace_msg", "-message_file", msgLog)
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uas.Process.Kill(); _ = uas.Wait() })

	const carrier, gateway = "ffffffff-0000-4000-8000-000000000001", "ffffffff-0000-4000-8000-000000000002"
	if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, 'e2e-carrier', 1, 'foo', 'sip.jambonz.org', 'bar')`, carrier); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound)
  VALUES (?, ?, '127.0.0.49', 16440, 0, 1)`, gateway, carrier); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrier)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier)
	})

	start := func(port string) *sidecar.Proc {
		env := sidecar.BaseEnv(t)
		env["SIP_LISTEN"] = "udp:127.0.0.1:" + port
		env["JAMBONES_CLUSTER_ID"] = cluster
		env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
		env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
		env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
		return sidecar.Start(t, env, "native front listening")
	}
	one, two := start("16441"), start("16442")

	const claimed = "regbot: claimed the regbot token"
	eventuallyTrue(t, 10*time.Second, "a leader", func() bool {
		return strings.Contains(one.Logs(), claimed) || strings.Contains(two.Logs(), claimed)
	})
	status := func() map[string]any {
		var s sql.NullString
		_ = db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier).Scan(&s)
		var m map[string]any
		_ = json.Unmarshal([]byte(s.String), &m)
		return m
	}
	eventuallyTrue(t, 10*time.Second, "registered", func() bool { return status()["status"] == "ok" })
	time.Sleep(time.Second) // two more checks each
	if strings.Contains(one.Logs(), claimed) == strings.Contains(two.Logs(), claimed) {
		t.Fatal("not exactly one instance claimed the token")
	}
	leader, other := one, two
	if strings.Contains(two.Logs(), claimed) {
		leader, other = two, one
	}

	first := status()["timestamp"]
	stopped := time.Now()
	leader.Stop()
	if !strings.Contains(leader.Logs(), "regbot: un-registered") {
		t.Errorf("leader did not un-register on shutdown")
	}
	eventuallyTrue(t, 3*time.Second, "takeover", func() bool { return strings.Contains(other.Logs(), claimed) })
	t.Logf("takeover %s after the leader stopped", time.Since(stopped).Round(10*time.Millisecond))
	eventuallyTrue(t, 10*time.Second, "registered by the new leader", func() bool {
		s := status()
		return s["status"] == "ok" && s["timestamp"] != first
	})
}

func eventuallyTrue(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
