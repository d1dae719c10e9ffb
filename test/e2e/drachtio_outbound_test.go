package e2e

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
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
// through drachtio-server to a sipp carrier that challenges, and the carrier
// sees Call-ID = sip_gateway_sid, the same From tag and CSeq + 1 on the
// retry; register_status in MySQL says ok.
func TestDrachtioRegbotThroughFront(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) { testDrachtioRegbot(t, kind) })
	}
}

func testDrachtioRegbot(t *testing.T, kind peerKind) {
	db := mysqlDB(t)
	rdb := redisClient(t)
	const cluster = "e2e-drachtio-regbot"
	rdb.Del(context.Background(), cluster+":regbot-token")
	const carrier, gateway = "ffffffff-0000-4000-8000-0000000006b1", "ffffffff-0000-4000-8000-0000000006b2"
	const gwIP = "127.0.0.51"
	gwPort, _ := peerPorts(kind, 16820, 0)
	sipPort, ctl := peerPorts(kind, 16800, 19700)
	msgLog := carrierUAS(t, "uas-auth-register.xml", gwIP, gwPort)
	insertCarrier(t, db, carrier, `INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password, register_public_ip_in_contact)
  VALUES (?, 'e2e-drachtio-carrier', 1, 'foo', 'sip.jambonz.org', 'bar', 1)`,
		[]any{carrier}, [][4]any{{gateway, gwIP, gwPort, 0}})

	// The service starts while drachtio-server is not up yet: the regbot
	// must wait for the connection rather than fail its first REGISTER and
	// wait for the failure retry interval (5 min).
	env := drachtioEnv(t, ctl)
	env["JAMBONES_CLUSTER_ID"] = cluster
	env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
	proc := sidecar.Start(t, env, "drachtio: connection ended, reconnecting")
	peer := startPeer(t, kind, sipPort, ctl, "203.0.113.10")
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
	public := fmt.Sprintf("203.0.113.10:%d", sipPort)
	if c := header(retry, "Contact"); !strings.Contains(c, "@"+public) {
		t.Errorf("Contact = %q, want drachtio's public address %s", c, public)
	}
	// Both went out from drachtio's SIP socket, not from one of ours.
	if v := header(retry, "Via"); !strings.Contains(v, public) {
		t.Errorf("Via = %q, want drachtio's address %s", v, public)
	}

	s := status()
	if s["reason"] != "200 OK" || s["callId"] != gateway || s["cseq"] != fmt.Sprintf("%d REGISTER", n2) || s["expires"] != float64(600) {
		t.Errorf("register_status = %v", s)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(s["timestamp"])); err != nil {
		t.Errorf("register_status timestamp %v: %v", s["timestamp"], err)
	}
	if strings.Contains(proc.Logs(), "REGISTER could not be sent") {
		t.Error("the regbot sent before the front was connected")
	}
	if stub, ok := peer.(stubPeer); ok && len(stub.Sent()) < 2 {
		t.Errorf("stand-in relayed %d requests, want 2", len(stub.Sent()))
	}
	if v := peer.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}

// TestDrachtioGatewayPingsThroughFront: OPTIONS pings go out through
// drachtio-server; a gateway answering 200 is not blacklisted, one
// answering 503 gets blacklist-sip-gateway:<sid>.
func TestDrachtioGatewayPingsThroughFront(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) { testDrachtioGatewayPings(t, kind) })
	}
}

func testDrachtioGatewayPings(t *testing.T, kind peerKind) {
	db := mysqlDB(t)
	rdb := redisClient(t)
	ctx := context.Background()
	const carrier = "ffffffff-0000-4000-8000-0000000006c1"
	const ok, bad = "ffffffff-0000-4000-8000-0000000006c2", "ffffffff-0000-4000-8000-0000000006c3"
	rdb.Del(ctx, "blacklist-sip-gateway:"+ok, "blacklist-sip-gateway:"+bad)
	t.Cleanup(func() { rdb.Del(ctx, "blacklist-sip-gateway:"+ok, "blacklist-sip-gateway:"+bad) })
	okPort, _ := peerPorts(kind, 16830, 0)
	badPort, _ := peerPorts(kind, 16831, 0)
	sipPort, ctl := peerPorts(kind, 16801, 19701)
	okLog := carrierUAS(t, "../../internal/pinger/testdata/uas-options-200.xml", "127.0.0.52", okPort)
	badLog := carrierUAS(t, "../../internal/pinger/testdata/uas-options-503.xml", "127.0.0.53", badPort)
	insertCarrier(t, db, carrier, `INSERT INTO voip_carriers (voip_carrier_sid, name) VALUES (?, 'e2e-drachtio-pings')`,
		[]any{carrier}, [][4]any{{ok, "127.0.0.52", okPort, 1}, {bad, "127.0.0.53", badPort, 1}})

	peer, proc := startThroughDrachtio(t, kind, sipPort, ctl, map[string]string{
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
			if v := header(m, "Via"); !strings.Contains(v, fmt.Sprintf("203.0.113.10:%d", sipPort)) {
				t.Errorf("ping Via = %q, want drachtio's address", v)
			}
			if f := header(m, "From"); !strings.Contains(f, "@203.0.113.10") {
				t.Errorf("ping From = %q, want drachtio's public address", f)
			}
			break
		}
	}
	if !proc.WaitLog(fmt.Sprintf("127.0.0.53:%d;transport=udp unsuccessfully, received: 503", badPort)) {
		t.Errorf("no alert for the 503 gateway")
	}
	if v := peer.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}

// TestDrachtioOptionsScenarios runs the OPTIONS check-in scenarios through
// the drachtio front: the same X-Members answers and Redis sets as in
// native mode (TestOptionsScenarios), with the source address and port as
// drachtio reports them.
func TestDrachtioOptionsScenarios(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) {
			rdb := redisClient(t)
			sipPort, ctl := peerPorts(kind, 16802, 19702)
			sippPort, _ := peerPorts(kind, 16840, 0)
			peer, _ := startThroughDrachtio(t, kind, sipPort, ctl, nil)
			runCheckInSteps(t, rdb, fmt.Sprintf("127.0.0.1:%d", sipPort), sippPort)
			if v := peer.Violations(); len(v) != 0 {
				t.Errorf("protocol violations: %v", v)
			}
		})
	}
}

// drachtioEnv is the service's environment for a stand-in on control port ctl.
func drachtioEnv(t *testing.T, ctl int) map[string]string {
	env := sidecar.BaseEnv(t)
	env["DRACHTIO_HOST"] = "127.0.0.1"
	env["DRACHTIO_PORT"] = fmt.Sprint(ctl)
	env["DRACHTIO_SECRET"] = "cymru"
	env["JAMBONES_NETWORK_CIDR"] = "127.0.0.0/8"
	return env
}

func stubOptions(sipPort, ctl int, external string) drachtiostub.Options {
	return drachtiostub.Options{
		Control:    fmt.Sprintf("127.0.0.1:%d", ctl),
		Secret:     "cymru",
		SIP:        []drachtiostub.Listen{{Transport: "udp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)}, {Transport: "tcp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)}},
		ExternalIP: external,
	}
}

// TestDrachtioSBCAddresses: in drachtio mode the sbc_addresses rows come
// from drachtio's hostports once connected, and follow them when drachtio
// comes back with another external IP, at the reconnect (not at the next
// keep-alive, an hour away here).
func TestDrachtioSBCAddresses(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) { testDrachtioSBCAddresses(t, kind) })
	}
}

func testDrachtioSBCAddresses(t *testing.T, kind peerKind) {
	db := mysqlDB(t)
	redisClient(t)
	const before, after = "203.0.113.70", "203.0.113.71"
	cleanup := func() { _, _ = db.Exec(`DELETE FROM sbc_addresses WHERE ipv4 IN (?, ?)`, before, after) }
	cleanup()
	t.Cleanup(cleanup)
	sipPort, ctl := peerPorts(kind, 16803, 19703)
	peer := startPeer(t, kind, sipPort, ctl, before)
	env := drachtioEnv(t, ctl)
	env["SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND"] = "3600000"
	env["DEAD_SBC_IN_SECOND"] = "7200"
	sidecar.Start(t, env, "drachtio front connected")

	row := func(ip string) (port int, tls, wss sql.NullInt64, n int) {
		_ = db.QueryRow(`SELECT port, tls_port, wss_port, (SELECT COUNT(*) FROM sbc_addresses WHERE ipv4 = ?)
			FROM sbc_addresses WHERE ipv4 = ? LIMIT 1`, ip, ip).Scan(&port, &tls, &wss, &n)
		return port, tls, wss, n
	}
	eventuallyTrue(t, 10*time.Second, "row of "+before, func() bool { _, _, _, n := row(before); return n > 0 })
	if port, tls, wss, n := row(before); port != sipPort || tls.Valid || wss.Valid || n != 1 {
		t.Errorf("row of %s = port %d tls %v wss %v (%d rows), want port %d only, one row", before, port, tls, wss, n, sipPort)
	}
	var private int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sbc_addresses WHERE ipv4 = '127.0.0.1'`).Scan(&private); err != nil || private != 0 {
		t.Errorf("local hostports announced: %d rows for 127.0.0.1 (%v)", private, err)
	}

	peer.Restart(t, after)
	eventuallyTrue(t, 15*time.Second, "row of "+after+" after the reconnect", func() bool { _, _, _, n := row(after); return n > 0 })
	if port, _, _, n := row(after); port != sipPort || n != 1 {
		t.Errorf("row of %s = port %d (%d rows)", after, port, n)
	}
}

// probeReady returns the status of /ready on port and its checks.
func probeReady(t *testing.T, port int) (int, map[string]any) {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		Checks map[string]any `json:"checks"`
	}
	body, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("/ready: %v (%s)", err, body)
	}
	return res.StatusCode, v.Checks
}

// TestDrachtioReady: /ready is 503 (drachtio check failing) while the front
// is not connected to drachtio-server, 200 once it is, 503 again when
// drachtio goes away and 200 after it is back.
func TestDrachtioReady(t *testing.T) {
	redisClient(t)
	const httpPort = 16850
	env := drachtioEnv(t, 19704)
	env["HTTP_PORT"] = fmt.Sprint(httpPort)
	proc := sidecar.Start(t, env, "http: serving")
	if code, checks := probeReady(t, httpPort); code != 503 || checks["drachtio"] == "ok" || checks["redis"] != "ok" {
		t.Errorf("/ready before drachtio is up = %d %v, want 503 with the drachtio check failing", code, checks)
	}
	stub := drachtiostub.Start(t, stubOptions(16804, 19704, "203.0.113.10"))
	eventuallyTrue(t, 20*time.Second, "/ready 200 once connected", func() bool { code, _ := probeReady(t, httpPort); return code == 200 })
	if _, checks := probeReady(t, httpPort); checks["drachtio"] != "ok" {
		t.Errorf("checks once connected = %v", checks)
	}
	if !proc.WaitLog("drachtio front connected") {
		t.Error("ready without a connection logged")
	}
	stub.StopControl()
	eventuallyTrue(t, 10*time.Second, "/ready 503 once drachtio is gone", func() bool { code, _ := probeReady(t, httpPort); return code == 503 })
	if err := stub.StartControl(); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, 20*time.Second, "/ready 200 after drachtio is back", func() bool { code, _ := probeReady(t, httpPort); return code == 200 })
}

// TestDrachtioTLS: with DRACHTIO_TLS and DRACHTIO_TLS_CA_FILE the service
// connects to a TLS control port whose certificate that CA signed, and the
// original REGISTER scenario runs through it; a certificate from another CA
// is refused (no session, the error logged).
func TestDrachtioTLS(t *testing.T) {
	rdb := redisClient(t)
	opts := authserver.DefaultOptions()
	opts.WebhookSecret = "foobar"
	sidecar.Webhook(t, opts)
	cert := testenv.SelfSignedCert(t, "")
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	so := stubOptions(16805, 19705, "203.0.113.10")
	so.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	stub := drachtiostub.Start(t, so)

	t.Run("certificate from another CA is refused", func(t *testing.T) {
		env := drachtioEnv(t, 19705)
		env["DRACHTIO_TLS"] = "1"
		env["DRACHTIO_TLS_CA_FILE"] = testenv.SelfSignedCert(t, "").CertFile
		proc := sidecar.Start(t, env, "certificate signed by unknown authority")
		if strings.Contains(proc.Logs(), "drachtio front connected") {
			t.Error("connected with an untrusted certificate")
		}
		proc.Stop()
	})
	t.Run("plain TCP to the TLS port gets no session", func(t *testing.T) {
		env := drachtioEnv(t, 19705)
		proc := sidecar.Start(t, env, "drachtio: connection ended, reconnecting")
		if strings.Contains(proc.Logs(), "drachtio front connected") {
			t.Error("connected in plain TCP to a TLS port")
		}
		proc.Stop()
	})
	t.Run("trusted certificate", func(t *testing.T) {
		env := drachtioEnv(t, 19705)
		env["DRACHTIO_TLS"] = "on"
		env["DRACHTIO_TLS_CA_FILE"] = cert.CertFile
		sidecar.Start(t, env, "drachtio front connected")
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv",
			Target: "127.0.0.1:16805", LocalPort: 16815})
		b, _, _ := readBinding(t, rdb, "john@jambonz.org")
		if b.SBCAddress != "udp/203.0.113.10:16805,tcp/203.0.113.10:16805" {
			t.Errorf("sbcAddress = %q", b.SBCAddress)
		}
		if v := stub.Violations(); len(v) != 0 {
			t.Errorf("protocol violations: %v", v)
		}
	})
}
