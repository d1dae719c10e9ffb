package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
)

// Ports of the drachtio follow-up tests: SIP 16800-16899, control 19700-19799.

// carrierUAS runs a sipp UAS playing scenario on ip:port (UDP) until the test
// ends and returns the file where it traces the messages it sees.
func carrierUAS(t *testing.T, scenario, ip string, port int) string {
	t.Helper()
	if !filepath.IsAbs(scenario) && !strings.Contains(scenario, "/") {
		scenario = filepath.Join(testenv.ScenarioDir(t), scenario)
	}
	scenario, _ = filepath.Abs(scenario)
	msgLog := filepath.Join(t.TempDir(), "carrier-messages.log")
	uas := exec.Command(testenv.Sipp(t), "-sf", scenario, "-i", ip, "-p", strconv.Itoa(port), "-t", "u1",
		"-nostdin", "-deadcall_wait", "1", "-trace_msg", "-message_file", msgLog)
	uas.Dir = t.TempDir()
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uas.Process.Kill(); _ = uas.Wait() })
	return msgLog
}

// received returns the SIP messages sipp traced as received, in order.
func received(t *testing.T, msgLog string) []string {
	t.Helper()
	data, err := os.ReadFile(msgLog)
	if err != nil {
		return nil
	}
	var out []string
	parts := strings.Split(string(data), "message received")
	for _, p := range parts[1:] {
		// "[n] bytes :\n\n<message>\n\n-----..."
		_, msg, ok := strings.Cut(p, ":\n")
		if !ok {
			continue
		}
		msg = strings.TrimLeft(msg, "\r\n")
		if i := strings.Index(msg, "\n-----"); i >= 0 {
			msg = msg[:i]
		}
		out = append(out, msg)
	}
	return out
}

// header returns the value of the first header called name in msg.
func header(msg, name string) string {
	re := regexp.MustCompile(`(?mi)^` + regexp.QuoteMeta(name) + `:\s*(.*?)\r?$`)
	if m := re.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

var tagRe = regexp.MustCompile(`;\s*tag=([^;>\s]+)`)

func mysqlDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testenv.MySQL(t).DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// insertCarrier adds a carrier and its gateways (sid -> ip:port); they are
// deleted when the test ends.
func insertCarrier(t *testing.T, db *sql.DB, carrier, insertCarrierSQL string, args []any, gateways [][4]any) {
	t.Helper()
	t.Cleanup(func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrier)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier)
	})
	if _, err := db.Exec(insertCarrierSQL, args...); err != nil {
		t.Fatal(err)
	}
	for _, g := range gateways {
		if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound, send_options_ping)
  VALUES (?, ?, ?, ?, 0, 1, ?)`, g[0], carrier, g[1], g[2], g[3]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrachtioRegbotThroughFront runs the service in drachtio mode with a
// carrier requiring registration: the REGISTER and its digest retry go out
// through the drachtio-server stand-in to a sipp carrier that challenges,
// and the carrier sees Call-ID = sip_gateway_sid, the same From tag and
// CSeq + 1 on the retry; register_status in MySQL says ok.
func TestDrachtioRegbotThroughFront(t *testing.T) {
	db := mysqlDB(t)
	rdb := redisClient(t)
	const cluster = "e2e-drachtio-regbot"
	rdb.Del(context.Background(), cluster+":regbot-token")
	const carrier, gateway = "ffffffff-0000-4000-8000-0000000006b1", "ffffffff-0000-4000-8000-0000000006b2"
	const gwIP, gwPort = "127.0.0.51", 16820
	msgLog := carrierUAS(t, "uas-auth-register.xml", gwIP, gwPort)
	insertCarrier(t, db, carrier, `INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password, register_public_ip_in_contact)
  VALUES (?, 'e2e-drachtio-carrier', 1, 'foo', 'sip.jambonz.org', 'bar', 1)`,
		[]any{carrier}, [][4]any{{gateway, gwIP, gwPort, 0}})

	stub, _ := startThroughDrachtio(t, 16800, 19700, map[string]string{
		"JAMBONES_CLUSTER_ID":                cluster,
		"JAMBONES_REGBOT_START_DELAY_MAX_MS": "1",
		"JAMBONES_REGBOT_STATUS_INTERVAL_MS": "500",
		"SEND_OPTIONS_PING_INTERVAL":         "3600",
	})
	status := func() map[string]any {
		var s sql.NullString
		_ = db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier).Scan(&s)
		var m map[string]any
		_ = json.Unmarshal([]byte(s.String), &m)
		return m
	}
	eventuallyTrue(t, 15*time.Second, "register_status ok", func() bool { return status()["status"] == "ok" })

	var regs []string
	for _, m := range received(t, msgLog) {
		if strings.HasPrefix(m, "REGISTER ") {
			regs = append(regs, m)
		}
	}
	if len(regs) < 2 {
		t.Fatalf("carrier saw %d REGISTERs, want 2:\n%s", len(regs), strings.Join(regs, "\n---\n"))
	}
	first, retry := regs[0], regs[1]
	if got := header(first, "Call-ID"); got != gateway {
		t.Errorf("first REGISTER Call-ID = %q, want the gateway sid %q", got, gateway)
	}
	if got := header(retry, "Call-ID"); got != gateway {
		t.Errorf("retry Call-ID = %q, want the gateway sid %q", got, gateway)
	}
	tag1, tag2 := tagRe.FindStringSubmatch(header(first, "From")), tagRe.FindStringSubmatch(header(retry, "From"))
	if tag1 == nil || tag2 == nil || tag1[1] != tag2[1] {
		t.Errorf("From tags: first %q, retry %q, want the same", header(first, "From"), header(retry, "From"))
	}
	var n1, n2 int
	var m1, m2 string
	if _, err := fmt.Sscanf(header(first, "CSeq"), "%d %s", &n1, &m1); err != nil {
		t.Fatalf("first CSeq %q: %v", header(first, "CSeq"), err)
	}
	if _, err := fmt.Sscanf(header(retry, "CSeq"), "%d %s", &n2, &m2); err != nil {
		t.Fatalf("retry CSeq %q: %v", header(retry, "CSeq"), err)
	}
	if n2 != n1+1 || m1 != "REGISTER" || m2 != "REGISTER" {
		t.Errorf("CSeq: first %d %s, retry %d %s, want +1", n1, m1, n2, m2)
	}
	if header(first, "Authorization") != "" || !strings.HasPrefix(header(retry, "Authorization"), "Digest ") {
		t.Errorf("Authorization: first %q, retry %q", header(first, "Authorization"), header(retry, "Authorization"))
	}
	// register_public_ip_in_contact: the Contact carries drachtio's public
	// address (from its hostports).
	if c := header(retry, "Contact"); !strings.Contains(c, "@203.0.113.10:16800") {
		t.Errorf("Contact = %q, want drachtio's public address 203.0.113.10:16800", c)
	}
	// Both went out from drachtio's SIP socket, not from one of ours.
	if v := header(retry, "Via"); !strings.Contains(v, "203.0.113.10:16800") {
		t.Errorf("Via = %q, want drachtio's address", v)
	}

	s := status()
	if s["reason"] != "200 OK" || s["callId"] != gateway || s["cseq"] != fmt.Sprintf("%d REGISTER", n2) || s["expires"] != float64(600) {
		t.Errorf("register_status = %v", s)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(s["timestamp"])); err != nil {
		t.Errorf("register_status timestamp %v: %v", s["timestamp"], err)
	}
	if sent := stub.Sent(); len(sent) < 2 {
		t.Errorf("stand-in relayed %d requests, want 2", len(sent))
	}
	if v := stub.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}

// TestDrachtioGatewayPingsThroughFront: OPTIONS pings go out through the
// drachtio-server stand-in; a gateway answering 200 is not blacklisted, one
// answering 503 gets blacklist-sip-gateway:<sid>.
func TestDrachtioGatewayPingsThroughFront(t *testing.T) {
	db := mysqlDB(t)
	rdb := redisClient(t)
	ctx := context.Background()
	const carrier = "ffffffff-0000-4000-8000-0000000006c1"
	const ok, bad = "ffffffff-0000-4000-8000-0000000006c2", "ffffffff-0000-4000-8000-0000000006c3"
	rdb.Del(ctx, "blacklist-sip-gateway:"+ok, "blacklist-sip-gateway:"+bad)
	t.Cleanup(func() { rdb.Del(ctx, "blacklist-sip-gateway:"+ok, "blacklist-sip-gateway:"+bad) })
	okLog := carrierUAS(t, "../../internal/pinger/testdata/uas-options-200.xml", "127.0.0.52", 16830)
	badLog := carrierUAS(t, "../../internal/pinger/testdata/uas-options-503.xml", "127.0.0.53", 16831)
	insertCarrier(t, db, carrier, `INSERT INTO voip_carriers (voip_carrier_sid, name) VALUES (?, 'e2e-drachtio-pings')`,
		[]any{carrier}, [][4]any{{ok, "127.0.0.52", 16830, 1}, {bad, "127.0.0.53", 16831, 1}})

	stub, proc := startThroughDrachtio(t, 16801, 19701, map[string]string{
		"JAMBONES_CLUSTER_ID":        "e2e-drachtio-pings",
		"SEND_OPTIONS_PING_INTERVAL": "1",
		"OPTIONS_PING_TTL":           "300",
	})
	eventuallyTrue(t, 15*time.Second, "503 gateway blacklisted", func() bool {
		v, err := rdb.Get(ctx, "blacklist-sip-gateway:"+bad).Result()
		return err == nil && v == "1"
	})
	if ttl := rdb.TTL(ctx, "blacklist-sip-gateway:"+bad).Val(); ttl <= 290*time.Second || ttl > 300*time.Second {
		t.Errorf("blacklist TTL = %v, want ~300s", ttl)
	}
	eventuallyTrue(t, 5*time.Second, "200 gateway pinged", func() bool {
		for _, m := range received(t, okLog) {
			if strings.HasPrefix(m, "OPTIONS ") {
				return true
			}
		}
		return false
	})
	if _, err := rdb.Get(ctx, "blacklist-sip-gateway:"+ok).Result(); err != redis.Nil {
		t.Errorf("200 gateway blacklisted: %v", err)
	}
	for _, m := range received(t, badLog) {
		if strings.HasPrefix(m, "OPTIONS ") {
			if v := header(m, "Via"); !strings.Contains(v, "203.0.113.10:16801") {
				t.Errorf("ping Via = %q, want drachtio's address", v)
			}
			break
		}
	}
	if !strings.Contains(proc.Logs(), "127.0.0.53:16831;transport=udp unsuccessfully, received: 503") {
		t.Errorf("no alert for the 503 gateway")
	}
	if v := stub.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}

// TestDrachtioOptionsScenarios runs the original OPTIONS check-in scenarios
// through the drachtio front: the same X-Members answers and Redis sets as
// in native mode (TestOptionsScenarios), with the source address and port
// as drachtio reports them.
func TestDrachtioOptionsScenarios(t *testing.T) {
	rdb := redisClient(t)
	stub, _ := startThroughDrachtio(t, 16802, 19702, nil)
	runCheckInSteps(t, rdb, "127.0.0.1:16802", 16840)
	if v := stub.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}
