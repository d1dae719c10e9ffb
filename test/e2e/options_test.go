package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// SIP ports of these tests: 16300-16349.
const (
	optionsSIPPort   = 16300
	drainSIPPort     = 16302
	sbcAddrSIPPort   = 16304
	optionsSippPort  = 16310
	drainSippPort    = 16311
	optionsSippPort2 = 16312
)

var membersRe = regexp.MustCompile(`(?m)^X-Members:\s*(\S*)`)

// checkIn runs one OPTIONS check-in scenario (testdata/sipp) from ip:port and returns the
// X-Members value of the 200 ("" when absent), read from sipp's message trace.
func checkIn(t *testing.T, target, scenario, ip string, port int) string {
	t.Helper()
	msgs := filepath.Join(t.TempDir(), "messages.log")
	sidecar.Run(t, sidecar.Sipp{Scenario: scenario, Target: target, LocalIP: ip, LocalPort: port,
		Extra: []string{"-message_file", msgs}})
	data, err := os.ReadFile(msgs)
	if err != nil {
		t.Fatalf("sipp message trace: %v", err)
	}
	// The trace holds the OPTIONS sent and the 200 received; X-Members is only in the latter.
	m := membersRe.FindAllStringSubmatch(string(data), -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func setMembers(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	m, err := rdb.SMembers(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return strings.Join(m, ",")
}

// checkInStep is one OPTIONS check-in scenario from ip and the expected
// X-Members and sets after it.
type checkInStep struct {
	scenario, ip          string
	members               string
	activeFS, rtp, fsURLs string
}

// checkInSteps are the OPTIONS check-in scenarios in the original's test order, sent from
// port of each address.
func checkInSteps(port int) []checkInStep {
	fs1 := fmt.Sprintf("127.0.0.20:%d", port)
	fs2 := fmt.Sprintf("127.0.0.21:%d", port)
	const url1, url2 = "http://127.0.0.1:3000", "http://127.0.0.1:3001"
	return []checkInStep{
		{"uac-add-fs-1.xml", "127.0.0.20", "1", fs1, "", url1},
		{"uac-add-rtp-1.xml", "127.0.0.20", "1", fs1, "127.0.0.20", url1},
		{"uac-add-fs-2.xml", "127.0.0.21", "2", fs1 + "," + fs2, "127.0.0.20", url1 + "," + url2},
		{"uac-add-fs-2.xml", "127.0.0.21", "2", fs1 + "," + fs2, "127.0.0.20", url1 + "," + url2},
		{"uac-add-rtp-2.xml", "127.0.0.21", "2", fs1 + "," + fs2, "127.0.0.20,127.0.0.21", url1 + "," + url2},
		{"uac-remove-fs-1.xml", "127.0.0.20", "1", fs2, "127.0.0.20,127.0.0.21", url2},
		{"uac-remove-rtp-1.xml", "127.0.0.20", "1", fs2, "127.0.0.21", url2},
		{"uac-remove-fs-2.xml", "127.0.0.21", "0", "", "127.0.0.21", ""},
		{"uac-remove-rtp-2.xml", "127.0.0.21", "0", "", "", ""},
		{"uac-external-options-ping.xml", "127.0.0.22", "", "", "", ""},
	}
}

// runCheckInSteps runs checkInSteps against target and checks X-Members and
// the sets in Redis after each.
func runCheckInSteps(t *testing.T, rdb *redis.Client, target string, port int) {
	t.Helper()
	for i, st := range checkInSteps(port) {
		got := checkIn(t, target, st.scenario, st.ip, port)
		name := fmt.Sprintf("step %d %s from %s", i+1, st.scenario, st.ip)
		if got != st.members {
			t.Errorf("%s: X-Members = %q, want %q", name, got, st.members)
		}
		for key, want := range map[string]string{"default:active-fs": st.activeFS, "default:active-rtp": st.rtp, "default:fs-service-url": st.fsURLs} {
			if got := setMembers(t, rdb, key); got != want {
				t.Errorf("%s: %s = %q, want %q", name, key, got, want)
			}
		}
	}
}

// TestOptionsScenarios runs the OPTIONS check-in scenarios in the original's order,
// each from its own loopback address, and checks the sets after each.
func TestOptionsScenarios(t *testing.T) {
	rdb := redisClient(t)
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = fmt.Sprintf("udp:127.0.0.1:%d", optionsSIPPort)
	proc := sidecar.Start(t, env, "native front listening")
	target := fmt.Sprintf("127.0.0.1:%d", optionsSIPPort)

	runCheckInSteps(t, rdb, target, optionsSippPort)
	proc.Stop()

	// Expiry, with a short EXPIRES_INTERVAL: a member that stops checking in
	// is removed, and so is one left in Redis before the service started.
	ctx := context.Background()
	rdb.SAdd(ctx, "default:active-rtp", "127.0.0.99")
	env["EXPIRES_INTERVAL"] = "1500"
	env["CHECK_EXPIRES_INTERVAL"] = "100"
	sidecar.Start(t, env, "native front listening")
	if got := checkIn(t, target, "uac-add-fs-1.xml", "127.0.0.20", optionsSippPort2); got != "1" {
		t.Errorf("add-fs-1 before expiry: X-Members = %q, want 1", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		fs, rtp := setMembers(t, rdb, "default:active-fs"), setMembers(t, rdb, "default:active-rtp")
		urls := setMembers(t, rdb, "default:fs-service-url")
		if fs == "" && rtp == "" && urls == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members not expired: active-fs=%q active-rtp=%q fs-service-url=%q", fs, rtp, urls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliRun runs `sbc-sip-sidecar cli args...` against socket.
func cliRun(t *testing.T, socket string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(sidecar.Binary(t), append([]string{"cli"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SBC_SOCKET_PATH=" + socket}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("cli %v: %v", args, err)
	}
	return 0, string(out)
}

// TestOptionsDrain drains a feature server through the CLI subcommand: its
// check-ins no longer put it in active-fs until it is undrained.
func TestOptionsDrain(t *testing.T) {
	rdb := redisClient(t)
	ctx := context.Background()
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = fmt.Sprintf("udp:127.0.0.1:%d", drainSIPPort)
	socket := env["SBC_SOCKET_PATH"]
	sidecar.Start(t, env, "native front listening")
	target := fmt.Sprintf("127.0.0.1:%d", drainSIPPort)
	member := fmt.Sprintf("127.0.0.20:%d", drainSippPort)

	if got := checkIn(t, target, "uac-add-fs-1.xml", "127.0.0.20", drainSippPort); got != "1" {
		t.Fatalf("first check-in: X-Members = %q", got)
	}
	code, out := cliRun(t, socket, "fs", "drain", "127.0.0.20")
	if code != 0 || !strings.Contains(out, "Drained 127.0.0.20") || !strings.Contains(out, "Removed from active-fs: "+member) {
		t.Fatalf("fs drain: exit %d\n%s", code, out)
	}
	if got := setMembers(t, rdb, "default:active-fs"); got != "" {
		t.Errorf("active-fs after drain = %q, want empty", got)
	}

	// Another feature server keeps the count at 1, which the unchanged
	// scenario expects; the drained one must not be added.
	rdb.SAdd(ctx, "default:active-fs", "10.9.9.9:5060")
	if got := checkIn(t, target, "uac-add-fs-1.xml", "127.0.0.20", drainSippPort); got != "1" {
		t.Errorf("drained check-in: X-Members = %q, want 1", got)
	}
	if got := setMembers(t, rdb, "default:active-fs"); got != "10.9.9.9:5060" {
		t.Errorf("active-fs after drained check-in = %q, want only 10.9.9.9:5060", got)
	}
	if code, out := cliRun(t, socket, "fs", "drained"); code != 0 || !strings.Contains(out, "127.0.0.20") {
		t.Errorf("fs drained: exit %d\n%s", code, out)
	}
	if code, out := cliRun(t, socket, "fs", "list"); code != 0 || !regexp.MustCompile(`127\.0\.0\.20\s+drained`).MatchString(out) ||
		!regexp.MustCompile(`10\.9\.9\.9:5060\s+active`).MatchString(out) {
		t.Errorf("fs list: exit %d\n%s", code, out)
	}

	code, out = cliRun(t, socket, "fs", "undrain", "127.0.0.20")
	if code != 0 || !strings.Contains(out, "Undrained 127.0.0.20") {
		t.Fatalf("fs undrain: exit %d\n%s", code, out)
	}
	rdb.SRem(ctx, "default:active-fs", "10.9.9.9:5060")
	if got := checkIn(t, target, "uac-add-fs-1.xml", "127.0.0.20", drainSippPort); got != "1" {
		t.Errorf("check-in after undrain: X-Members = %q, want 1", got)
	}
	if got := setMembers(t, rdb, "default:active-fs"); got != member {
		t.Errorf("active-fs after undrain = %q, want %q", got, member)
	}
	if code, out := cliRun(t, socket, "fs", "active"); code != 0 || !strings.Contains(out, member) {
		t.Errorf("fs active: exit %d\n%s", code, out)
	}

	// Operator errors: a clear message and a non-zero exit.
	if code, out := cliRun(t, socket, "fs", "drain", "300.1.1.1"); code == 0 || !strings.Contains(out, "invalid IP address") {
		t.Errorf("invalid IP: exit %d\n%s", code, out)
	}
	if code, out := cliRun(t, filepath.Join(t.TempDir(), "none.sock"), "fs", "list"); code == 0 || !strings.Contains(out, "does not exist") {
		t.Errorf("missing socket: exit %d\n%s", code, out)
	}
}

// TestSBCAddresses checks the sbc_addresses upkeep in MariaDB: this SBC's
// public address (SIP_PUBLIC_ADDRESS, as on a NAT'ed host) is upserted and
// rows of SBCs dead for DEAD_SBC_IN_SECOND are deleted.
func TestSBCAddresses(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const public, dead = "203.0.113.77", "203.0.113.78"
	cleanup := func() { _, _ = db.Exec(`DELETE FROM sbc_addresses WHERE ipv4 IN (?, ?)`, public, dead) }
	cleanup()
	t.Cleanup(cleanup)
	if _, err := db.Exec(`INSERT INTO sbc_addresses (sbc_address_sid, ipv4, port, last_updated)
		VALUES ('5bc00000-0000-4000-8000-000000000078', ?, 5060, DATE_SUB(NOW(), INTERVAL 2 HOUR))`, dead); err != nil {
		t.Fatal(err)
	}
	redisClient(t)
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d", sbcAddrSIPPort, sbcAddrSIPPort)
	env["SIP_PUBLIC_ADDRESS"] = public
	env["DEAD_SBC_IN_SECOND"] = "3600"
	env["SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND"] = "200"
	sidecar.Start(t, env, "native front listening")

	deadline := time.Now().Add(20 * time.Second)
	for {
		var port, n, deadRows int
		var tls, wss sql.NullInt64
		err := db.QueryRow(`SELECT port, tls_port, wss_port, (SELECT COUNT(*) FROM sbc_addresses WHERE ipv4 = ?),
			(SELECT COUNT(*) FROM sbc_addresses WHERE ipv4 = ?) FROM sbc_addresses WHERE ipv4 = ? LIMIT 1`,
			public, dead, public).Scan(&port, &tls, &wss, &n, &deadRows)
		if err == nil && deadRows == 0 {
			if port != sbcAddrSIPPort || tls.Valid || wss.Valid || n != 1 {
				t.Fatalf("row = port %d tls %v wss %v (%d rows), want port %d, no tls/wss, one row", port, tls, wss, n, sbcAddrSIPPort)
			}
			break
		}
		if err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sbc_addresses not updated (err %v, dead rows %d)", err, deadRows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Several refreshes later there is still one row.
	time.Sleep(600 * time.Millisecond)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sbc_addresses WHERE ipv4 = ?`, public).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows for %s after refreshes = %d (%v), want 1", public, n, err)
	}
}

// TestOptionsCheckInOutsideNetworkIgnored: with JAMBONES_NETWORK_CIDR naming
// 127.0.0.0/25 only, a check-in from 127.0.0.200 is answered as a keepalive
// and changes nothing, while one from 127.0.0.20 is recorded.
func TestOptionsCheckInOutsideNetworkIgnored(t *testing.T) {
	rdb := redisClient(t)
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:16306"
	env["JAMBONES_NETWORK_CIDR"] = "127.0.0.0/25"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:16306"

	for _, header := range []string{"X-FS-Status: open", "X-RTP-Status: open"} {
		answer := checkInFrom(t, target, "127.0.0.200", 16313, header)
		if !strings.HasPrefix(answer, "SIP/2.0 200") || strings.Contains(answer, "X-Members") {
			t.Errorf("outside %s answered %q, want a plain 200", header, answer)
		}
	}
	if got := setMembers(t, rdb, "default:active-fs") + "|" + setMembers(t, rdb, "default:active-rtp"); got != "|" {
		t.Errorf("outside check-ins changed the sets: %s", got)
	}
	if !proc.WaitLog("check-in from outside JAMBONES_NETWORK_CIDR ignored") {
		t.Error("ignored check-in not logged")
	}
	if members := checkIn(t, target, "uac-add-fs-1.xml", "127.0.0.20", 16314); members != "1" {
		t.Errorf("inside check-in X-Members = %q, want 1", members)
	}
}

// checkInFrom sends an OPTIONS check-in with header from ip:port and returns
// the answer's head.
func checkInFrom(t *testing.T, target, ip string, port int, header string) string {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port}, mustUDP(target))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d\r\n"+
		"From: <sip:fs@%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: ci-%d\r\nCSeq: 1 OPTIONS\r\n%s\r\n"+
		"Content-Length: 0\r\n\r\n", target, ip, port, time.Now().UnixNano(), ip, target, time.Now().UnixNano(), header)
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
