package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// usersCSV registers users name<from>..name<to-1> (password "pw") with the
// webhook and writes a sipp CSV for them.
func usersCSV(t *testing.T, hook *authserver.Server, from, to int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i := from; i < to; i++ {
		u := fmt.Sprintf("u%03d", i)
		hook.SetUser("jambonz.org", u, authserver.User{Password: "pw", MaxExpires: 300})
		fmt.Fprintf(&b, "%s;jambonz.org;[authentication username=%s password=pw]\n", u, u)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("users-%d-%d.csv", from, to))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertBound(t *testing.T, rdb *redis.Client, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		aor := fmt.Sprintf("u%03d@jambonz.org", i)
		ttl, err := rdb.TTL(context.Background(), "user:"+aor).Result()
		if err != nil || ttl < 200*time.Second || ttl > 300*time.Second {
			t.Errorf("%s TTL = %v (%v), want (200s, 300s]", aor, ttl, err)
		}
		if _, err := rdb.ZScore(context.Background(), "active-user", "user:"+aor).Result(); err != nil {
			t.Errorf("%s not in active-user: %v", aor, err)
		}
	}
}

func options(lport int) string {
	return fmt.Sprintf("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-o%d\r\n"+
		"From: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt-%d\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", lport, time.Now().UnixNano(), time.Now().UnixNano())
}

// answeredFast sends REGISTERs from lport and checks each gets a 503 with
// Retry-After well within a second: a down backend is known, not dialled
// (before the circuit breaker each took 3 s or more, docs/reliability.md).
// The precise figures come from bench/faults/run.sh.
func answeredFast(t *testing.T, target string, lport, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		start := time.Now()
		answer := exchange(t, "udp", target, lport, register("udp", lport, nil))
		elapsed := time.Since(start)
		if !strings.HasPrefix(answer, "SIP/2.0 503") || !strings.Contains(answer, "Retry-After:") {
			t.Fatalf("REGISTER with a backend down = %q, want 503 with Retry-After", answer)
		}
		if elapsed > time.Second {
			t.Errorf("REGISTER with a backend down answered in %v, want well under 1 s", elapsed)
		}
	}
}

// snapshot returns the values of user:<aor> for users from..to-1.
func snapshot(t *testing.T, rdb *redis.Client, from, to int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := from; i < to; i++ {
		k := fmt.Sprintf("user:u%03d@jambonz.org", i)
		v, err := rdb.Get(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// waitReady waits until /ready on httpPort answers 200.
func waitReady(t *testing.T, httpPort int) {
	t.Helper()
	eventuallyTrue(t, 10*time.Second, "/ready 200", func() bool { code, _ := probeReady(t, httpPort); return code == 200 })
}

// TestFaultRedis stops the service's redis-server during registrations and
// starts it again: REGISTERs get 503 + Retry-After at once meanwhile,
// keepalives still 200, /ready says Redis is down, and every binding
// written before and after is there, unchanged, with its TTL.
func TestFaultRedis(t *testing.T) {
	rp := testenv.StartRedis(t, 16480)
	rdb := redis.NewClient(&redis.Options{Addr: rp.Addr()})
	t.Cleanup(func() { rdb.Close() })
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["JAMBONES_REDIS_HOST"], env["JAMBONES_REDIS_PORT"] = "127.0.0.1", strconv.Itoa(16480)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15110"
	env["HTTP_PORT"] = "15119"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15110"

	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: usersCSV(t, hook, 0, 20),
		Target: target, LocalIP: "127.0.0.31", LocalPort: 15111, Calls: 20, Rate: 40})
	assertBound(t, rdb, 0, 20)
	before := snapshot(t, rdb, 0, 20)

	// A registration run that spans the outage: some calls fail, the
	// service must survive it.
	during := make(chan error, 1)
	go func() {
		during <- sidecar.RunErr(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: usersCSV(t, hook, 100, 160),
			Target: target, LocalIP: "127.0.0.33", LocalPort: 15113, Calls: 60, Rate: 20})
	}()
	time.Sleep(time.Second)
	rp.Stop()

	answeredFast(t, target, 15112, 20)
	if answer := exchange(t, "udp", target, 15114, options(15114)); !strings.HasPrefix(answer, "SIP/2.0 200") {
		t.Errorf("keepalive during the outage = %q, want 200", firstLine(answer))
	}
	if code, checks := probeReady(t, 15119); code != 503 || !strings.Contains(fmt.Sprint(checks["redis"]), "unavailable") || checks["mysql"] != "ok" {
		t.Errorf("/ready during the outage = %d %v, want 503 with redis unavailable", code, checks)
	}

	rp.Start()
	<-during // its failures are expected
	waitReady(t, 15119)
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: usersCSV(t, hook, 20, 40),
		Target: target, LocalIP: "127.0.0.34", LocalPort: 15115, Calls: 20, Rate: 40})
	assertBound(t, rdb, 0, 40)
	for k, v := range snapshot(t, rdb, 0, 20) {
		if before[k] != v {
			t.Errorf("%s changed across the outage:\n before %s\n after  %s", k, before[k], v)
		}
	}
	logs := proc.Logs()
	if strings.Contains(logs, "panic") {
		t.Error("service panicked")
	}
	for _, line := range []string{`"msg":"backend down: failing fast until a probe succeeds","backend":"redis"`, `"msg":"backend up: probe succeeded","backend":"redis"`} {
		if !strings.Contains(logs, line) {
			t.Errorf("logs lack %s", line)
		}
	}
}

// TestFaultMySQL cuts the service off MySQL: cached re-registers still
// succeed, new registrations get 503 at once, /ready says MySQL is down,
// and all is well once it is back.
func TestFaultMySQL(t *testing.T) {
	rdb := redisClient(t)
	my := testenv.MySQL(t)
	proxy := testenv.StartTCPProxy(t, fmt.Sprintf("%s:%d", my.Host, my.Port))
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	_, port, _ := strings.Cut(proxy.Addr(), ":")
	env["JAMBONES_MYSQL_PORT"] = port
	env["DIRECTORY_CACHE_TTL_MS"] = "0" // the outage must be seen at once
	env["SIP_LISTEN"] = "udp:127.0.0.1:15120"
	env["HTTP_PORT"] = "15129"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15120"
	run := func(scenario, csv string, lport int) {
		t.Helper()
		sidecar.Run(t, sidecar.Sipp{Scenario: scenario, CSV: csv, Target: target, LocalPort: lport})
	}

	run("uac-register-auth-success.xml", "good_user.csv", 15121)
	proxy.Cut()
	run("uac-re-register-auth-success.xml", "good_user.csv", 15121)
	run("uac-register-auth-failure-expect-503.xml", "good_user2.csv", 15122)
	answeredFast(t, target, 15123, 20)
	if code, checks := probeReady(t, 15129); code != 503 || !strings.Contains(fmt.Sprint(checks["mysql"]), "unavailable") || checks["redis"] != "ok" {
		t.Errorf("/ready during the outage = %d %v, want 503 with mysql unavailable", code, checks)
	}
	run("uac-re-register-auth-success.xml", "good_user.csv", 15121)
	proxy.Restore()
	waitReady(t, 15129)
	run("uac-register-auth-success-jane.xml", "good_user2.csv", 15122)
	readBinding(t, rdb, "john@jambonz.org")
	readBinding(t, rdb, "jane@jambonz.org")
	if !strings.Contains(proc.Logs(), `"msg":"backend up: probe succeeded","backend":"mysql"`) {
		t.Error("logs lack the MySQL recovery")
	}
}

// TestFaultWebhook: a slow webhook is cut off by the timeout and a failing
// one answered 503, both with an alert; the phone registers once it is back.
func TestFaultWebhook(t *testing.T) {
	rdb := redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["WEBHOOK_TIMEOUT_MS"] = "300"
	env["SIP_LISTEN"] = "udp:127.0.0.1:15130"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15130"

	hook.SetDelay(2 * time.Second)
	sidecar.Run(t, sidecar.Sipp{Scenario: testdata(t, "uac-register-auth-expect-503.xml"), CSV: "good_user.csv",
		Target: target, LocalPort: 15131})
	hook.SetDelay(0)
	hook.SetStatus(500)
	sidecar.Run(t, sidecar.Sipp{Scenario: testdata(t, "uac-register-auth-expect-503.xml"), CSV: "good_user.csv",
		Target: target, LocalPort: 15131})
	hook.SetStatus(0)
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv",
		Target: target, LocalPort: 15131})
	readBinding(t, rdb, "john@jambonz.org")
	proc.WaitLog(`"alert_type":"webhook-connection-failure"`)
	proc.WaitLog(`"alert_type":"webhook-failure"`)
	logs := proc.Logs()
	for _, alert := range []string{`"alert_type":"webhook-connection-failure"`, `"alert_type":"webhook-failure"`} {
		if strings.Count(logs, alert) != 1 {
			t.Errorf("want exactly one %s alert, logs have %d", alert, strings.Count(logs, alert))
		}
	}
}

// TestGracefulShutdown: SIGTERM while a REGISTER waits on the webhook; the
// phone still gets its 200 and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	rdb := redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	hook.SetDelay(1500 * time.Millisecond)
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15140"
	proc := sidecar.Start(t, env, "native front listening")

	done := make(chan error, 1)
	go func() {
		done <- sidecar.RunErr(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv",
			Target: "127.0.0.1:15140", LocalPort: 15141})
	}()
	for hook.Count() == 0 { // the authenticated REGISTER is waiting on the webhook
		time.Sleep(20 * time.Millisecond)
	}
	proc.Stop()
	if err := <-done; err != nil {
		t.Errorf("in-flight REGISTER not answered during shutdown: %v", err)
	}
	if code := proc.ExitCode(); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	readBinding(t, rdb, "john@jambonz.org")
}

// TestFaultMySQLStaleDirectory: with the directory cache on, accounts
// looked up before MySQL went down keep registering (new devices too,
// through their webhook) while realms never seen get 503 at once.
func TestFaultMySQLStaleDirectory(t *testing.T) {
	rdb := redisClient(t)
	my := testenv.MySQL(t)
	proxy := testenv.StartTCPProxy(t, fmt.Sprintf("%s:%d", my.Host, my.Port))
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	_, port, _ := strings.Cut(proxy.Addr(), ":")
	env["JAMBONES_MYSQL_PORT"] = port
	env["DIRECTORY_CACHE_TTL_MS"] = "1" // expired at once: only the stale copy can answer
	env["SIP_LISTEN"] = "udp:127.0.0.1:15150"
	sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15150"

	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv", Target: target, LocalPort: 15151})
	proxy.Cut()
	// jane was never registered: her account (jambonz.org) comes from the
	// stale cache, her credentials from the webhook.
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success-jane.xml", CSV: "good_user2.csv", Target: target, LocalPort: 15152})
	readBinding(t, rdb, "jane@jambonz.org")
	answer := exchange(t, "udp", target, 15153, register("udp", 15153, map[string]string{
		"From": "<sip:bob@never-seen.example.com>;tag=1", "To": "<sip:bob@never-seen.example.com>"}))
	if !strings.HasPrefix(answer, "SIP/2.0 503") || !strings.Contains(answer, "Retry-After:") {
		t.Errorf("REGISTER of a realm never looked up, MySQL down = %q, want 503 with Retry-After", firstLine(answer))
	}
	proxy.Restore()
}

// A client of the clients table (encrypted password) looked up before MySQL
// went down is still checked against its stale copy: the right password
// registers, a wrong one is refused as before.
func TestFaultMySQLStaleClient(t *testing.T) {
	rdb := redisClient(t)
	my := testenv.MySQL(t)
	db := testenv.RootDB(t, my)
	const (
		realm  = "stale-clients.jambonz.org"
		target = "127.0.0.1:15160"
	)
	seedClientsAccount(t, db, clientsAccount{sid: "b0b0b0b0-0000-4000-8000-000000000002", name: "stale clients account",
		realm: realm, clientSID: "c1c1c1c1-0000-4000-8000-000000000002"})

	proxy := testenv.StartTCPProxy(t, fmt.Sprintf("%s:%d", my.Host, my.Port))
	env := sidecar.BaseEnv(t)
	_, port, _ := strings.Cut(proxy.Addr(), ":")
	env["JAMBONES_MYSQL_PORT"] = port
	env["DIRECTORY_CACHE_TTL_MS"] = "1" // expired at once: only the stale copy can answer
	env["SIP_LISTEN"] = "udp:" + target
	sidecar.Start(t, env, "native front listening")

	dir := t.TempDir()
	good := filepath.Join(dir, "alice.csv")
	bad := filepath.Join(dir, "alice-bad.csv")
	writeCSV(t, good, "alice", realm, "s3cr3t")
	writeCSV(t, bad, "alice", realm, "wrong")
	// Looked up while MySQL is up (refused: no binding is written).
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-failure-expect-403.xml", CSV: bad, Target: target, LocalPort: 15161})
	proxy.Cut()
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-failure-expect-403.xml", CSV: bad, Target: target, LocalPort: 15162})
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: good, Target: target, LocalPort: 15163})
	b, _, _ := readBinding(t, rdb, "alice@"+realm)
	if b.AllowDirectAppCalling == nil || !*b.AllowDirectAppCalling || *b.AllowDirectQueueCalling || !*b.AllowDirectUserCalling {
		t.Errorf("direct calling flags not taken from the stale clients row: %+v", b)
	}
	proxy.Restore()
}
