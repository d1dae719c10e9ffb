package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// regbotRig is a carrier requiring registration (sipp challenging, then
// accepting foo/bar) in MySQL, and the Redis the instances share.
type regbotRig struct {
	db      *sql.DB
	rdb     *redis.Client
	cluster string
	carrier string
	msgLog  string
}

func newRegbotRig(t *testing.T, cluster, ip string, port int, carrier, gateway string) *regbotRig {
	t.Helper()
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	rdb.Del(context.Background(), cluster+":regbot-token")

	scenario, _ := filepath.Abs("testdata/uas-auth-register-no-timewait.xml")
	msgLog := filepath.Join(t.TempDir(), "msg.log")
	uas := exec.Command(testenv.Sipp(t), "-sf", scenario, "-i", ip, "-p", strconv.Itoa(port), "-t", "u1",
		"-nostdin", "-deadcall_wait", "1", "-trace_msg", "-message_file", msgLog)
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uas.Process.Kill(); _ = uas.Wait() })

	if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, ?, 1, 'foo', 'sip.jambonz.org', 'bar')`, carrier, "e2e-"+cluster); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound)
  VALUES (?, ?, ?, ?, 0, 1)`, gateway, carrier, ip, port); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrier)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier)
	})
	return &regbotRig{db: db, rdb: rdb, cluster: cluster, carrier: carrier, msgLog: msgLog}
}

// start runs an instance on 127.0.0.1:port checking leadership every
// statusInterval.
func (r *regbotRig) start(t *testing.T, port int, statusInterval time.Duration) *sidecar.Proc {
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:" + strconv.Itoa(port)
	env["JAMBONES_CLUSTER_ID"] = r.cluster
	env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = strconv.Itoa(int(statusInterval / time.Millisecond))
	env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
	return sidecar.Start(t, env, "native front listening")
}

// status is the carrier's register_status.
func (r *regbotRig) status() map[string]any {
	var s sql.NullString
	_ = r.db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, r.carrier).Scan(&s)
	var m map[string]any
	_ = json.Unmarshal([]byte(s.String), &m)
	return m
}

const claimedToken = "regbot: claimed the regbot token"

// leaderOf waits for exactly one of the two instances to claim the token and
// register the carrier; it returns the leader first.
func (r *regbotRig) leaderOf(t *testing.T, one, two *sidecar.Proc, interval time.Duration) (leader, other *sidecar.Proc) {
	t.Helper()
	eventuallyTrue(t, 10*time.Second, "a leader", func() bool {
		return strings.Contains(one.Logs(), claimedToken) || strings.Contains(two.Logs(), claimedToken)
	})
	eventuallyTrue(t, 10*time.Second, "registered", func() bool { return r.status()["status"] == "ok" })
	time.Sleep(2 * interval) // two more checks each
	if strings.Contains(one.Logs(), claimedToken) == strings.Contains(two.Logs(), claimedToken) {
		t.Fatal("not exactly one instance claimed the token")
	}
	if strings.Contains(two.Logs(), claimedToken) {
		return two, one
	}
	return one, two
}

// TestRegbot_TwoInstancesOneLeaderTakeover runs two services against the
// same Redis and MySQL with a sipp carrier: exactly one registers; when it
// stops (un-registering) the other takes over within a status interval.
func TestRegbot_TwoInstancesOneLeaderTakeover(t *testing.T) {
	const interval = 500 * time.Millisecond
	rig := newRegbotRig(t, "e2e-regbot", "127.0.0.49", 16440,
		"ffffffff-0000-4000-8000-000000000001", "ffffffff-0000-4000-8000-000000000002")
	leader, other := rig.leaderOf(t, rig.start(t, 16441, interval), rig.start(t, 16442, interval), interval)

	first := rig.status()["timestamp"]
	stopped := time.Now()
	leader.Stop()
	if !leader.WaitLog("regbot: un-registered") {
		t.Errorf("leader did not un-register on shutdown")
	}
	eventuallyTrue(t, 3*time.Second, "takeover", func() bool { return strings.Contains(other.Logs(), claimedToken) })
	t.Logf("takeover %s after the leader stopped", time.Since(stopped).Round(10*time.Millisecond))
	eventuallyTrue(t, 10*time.Second, "registered by the new leader", func() bool {
		s := rig.status()
		return s["status"] == "ok" && s["timestamp"] != first
	})
}

// TestRegbot_TakeoverAfterLeaderCrash: the leader is SIGKILLed, so it
// neither un-registers nor releases the token. The other instance claims
// the token once the crashed leader's claim lapses (token TTL, then at most
// one check interval) and registers the carrier itself.
func TestRegbot_TakeoverAfterLeaderCrash(t *testing.T) {
	const interval = time.Second
	// The token TTL regbot derives from the interval (internal/regbot: New).
	const ttl = interval + time.Second
	const ip, port = "127.0.0.51", 16450
	const ports = 16451
	rig := newRegbotRig(t, "e2e-regbot-crash", ip, port,
		"ffffffff-0000-4000-8000-000000000011", "ffffffff-0000-4000-8000-000000000012")
	one, two := rig.start(t, ports, interval), rig.start(t, ports+1, interval)
	leader, other := rig.leaderOf(t, one, two, interval)
	otherPort := ports + 1
	if other == one {
		otherPort = ports
	}
	ctx := context.Background()
	key := rig.cluster + ":regbot-token"
	held, err := rig.rdb.Get(ctx, key).Result()
	if err != nil || held == "" {
		t.Fatalf("token %s: %q %v", key, held, err)
	}
	if strings.Contains(other.Logs(), held) {
		t.Fatalf("the token %s is the other instance's", held)
	}

	first := rig.status()["timestamp"]
	killed := time.Now()
	leader.Kill()
	// A crash releases nothing: the token is still the dead leader's, with
	// at most the TTL to live (unless this test was descheduled that long).
	pttl := rig.rdb.PTTL(ctx, key).Val()
	if v, _ := rig.rdb.Get(ctx, key).Result(); v == held {
		if pttl <= 0 || pttl > ttl {
			t.Fatalf("token TTL after the crash = %s, want (0, %s]", pttl, ttl)
		}
	} else {
		t.Logf("the dead leader's token had already lapsed when checked (now %q)", v)
	}
	if strings.Contains(leader.Logs(), "regbot: un-registered") {
		t.Fatal("a SIGKILLed leader un-registered")
	}

	// Bound: TTL + one check interval, plus slack for a loaded machine; a
	// takeover that waited for anything else (the original's 70 s token)
	// would miss it by far.
	bound := ttl + interval + 5*time.Second
	eventuallyTrue(t, bound, "takeover after the crash", func() bool { return strings.Contains(other.Logs(), claimedToken) })
	t.Logf("token claimed %s after the leader was killed (TTL %s + interval %s = %s)",
		time.Since(killed).Round(10*time.Millisecond), ttl, interval, ttl+interval)
	if v, _ := rig.rdb.Get(ctx, key).Result(); v == held || v == "" {
		t.Fatalf("token after the takeover = %q", v)
	}
	eventuallyTrue(t, 10*time.Second, "registered by the new leader", func() bool {
		s := rig.status()
		return s["status"] == "ok" && s["timestamp"] != first
	})
	t.Logf("carrier registered again %s after the leader was killed", time.Since(killed).Round(10*time.Millisecond))
	// The REGISTER came from the surviving instance's socket.
	msgs, _ := os.ReadFile(rig.msgLog)
	from := regexp.MustCompile(`(?m)^REGISTER sip:[^\n]*\n(?:[^\n]+\n)*?Via: SIP/2\.0/UDP 127\.0\.0\.1:` + strconv.Itoa(otherPort) + `\b`)
	if !from.Match(msgs) {
		t.Errorf("no REGISTER from 127.0.0.1:%d at the carrier:\n%s", otherPort, tail(string(msgs), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
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
