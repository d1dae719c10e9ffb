package regbot_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// harness holds the real components a regbot test runs against.
type harness struct {
	db  *sql.DB
	rdb *redis.Client
	// rc is the service's kind of client, for the stores under test.
	rc       rueidis.Client
	carriers *mysqldir.Carriers
	front    *native.Front
	client   *native.Client
	alerts   *recorder
	cipher   *credcrypt.Cipher
	log      *slog.Logger
	// resolver, when set, replaces the system's DNS for the regbot.
	resolver regbot.Resolver
}

func newHarness(t *testing.T, sipPort int) *harness {
	t.Helper()
	my := testenv.MySQL(t)
	db, err := mysqldir.Open(config.MySQL{Host: my.Host, Port: my.Port, User: my.User, Password: my.Password, Database: my.Database, ConnectionLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	front, err := native.New(native.Options{
		Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1", Port: sipPort}},
		Log:    log,
	}, sipfront.NewMux(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := front.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = front.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	client, err := front.NewClient(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cipher, err := credcrypt.New("regbot-test-secret", false)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{db: db, rdb: rdb, rc: testenv.RueidisClient(t, rdb.Options().Addr), carriers: mysqldir.NewCarriers(db, db), front: front, client: client, alerts: &recorder{}, cipher: cipher, log: log}
}

// testWriter sends logs to t.Log so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// recorder collects alerts.
type recorder struct {
	mu  sync.Mutex
	all []alerts.Alert
}

func (r *recorder) Alert(_ context.Context, a alerts.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, a)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.all {
		out = append(out, a.Message)
	}
	return out
}

// carrier is one voip_carriers row with one sip_gateways row.
type carrier struct {
	sid, name, trunkType       string
	user, password, realm      string
	fromUser, fromDomain       string
	gatewaySID, host, protocol string
	port                       int
	optionsPing                bool
	requiresRegister           bool
}

func (h *harness) insert(t *testing.T, c carrier) {
	t.Helper()
	if c.trunkType == "" {
		c.trunkType = "static_ip"
	}
	if c.protocol == "" {
		c.protocol = "udp"
	}
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	_, err := h.db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password, register_from_user, register_from_domain, trunk_type)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.sid, c.name, c.requiresRegister, null(c.user), null(c.realm), null(c.password),
		null(c.fromUser), null(c.fromDomain), c.trunkType)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound, send_options_ping, protocol)
  VALUES (?, ?, ?, ?, 0, 1, ?, ?)`, c.gatewaySID, c.sid, c.host, c.port, c.optionsPing, c.protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.remove(t, c.sid) })
}

func (h *harness) remove(t *testing.T, carrierSID string) {
	t.Helper()
	if _, err := h.db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrierSID); err != nil {
		t.Error(err)
	}
	if _, err := h.db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrierSID); err != nil {
		t.Error(err)
	}
}

// registerStatus reads voip_carriers.register_status as JSON.
func (h *harness) registerStatus(t *testing.T, carrierSID string) map[string]any {
	t.Helper()
	var s sql.NullString
	if err := h.db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, carrierSID).Scan(&s); err != nil {
		return nil
	}
	if !s.Valid {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		t.Fatalf("register_status %q: %v", s.String, err)
	}
	return m
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uas runs sipp as a carrier with a scenario until the test ends; its
// message trace is returned by trace().
type uas struct {
	dir string
}

func startUAS(t *testing.T, scenario, ip string, port int) *uas {
	t.Helper()
	bin := testenv.Sipp(t)
	path := scenario
	if !filepath.IsAbs(path) {
		path = filepath.Join(testenv.ScenarioDir(t), scenario)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "-sf", path, "-i", ip, "-p", strconv.Itoa(port), "-t", "u1", "-nostdin", "-deadcall_wait", "1",
		"-trace_msg", "-message_file", filepath.Join(dir, "msg.log"), "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("sipp: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// sipp binds before it logs anything; give it a moment to open the port.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-exited:
		t.Fatalf("sipp exited at start: %s", out.String())
	default:
	}
	return &uas{dir: dir}
}

func (u *uas) trace() string {
	b, _ := os.ReadFile(filepath.Join(u.dir, "msg.log"))
	return string(b)
}

// addGateway adds another outbound gateway to an inserted carrier.
func (h *harness) addGateway(t *testing.T, carrierSID, gatewaySID, host string, port int) {
	t.Helper()
	if _, err := h.db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound, protocol)
  VALUES (?, ?, ?, ?, 0, 1, 'udp')`, gatewaySID, carrierSID, host, port); err != nil {
		t.Fatal(err)
	}
}

func uid(prefix string, n int) string {
	return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, n)
}
