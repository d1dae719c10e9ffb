package pinger_test

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

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
	sort.Strings(out)
	return out
}

func startUAS(t *testing.T, scenario, ip string, port int) {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Sipp(t), "-sf", path, "-i", ip, "-p", strconv.Itoa(port), "-t", "u1", "-nostdin")
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

func TestPinger_BlacklistsDisablesAndLifts(t *testing.T) {
	ctx := context.Background()
	my := testenv.MySQL(t)
	db, err := mysqldir.Open(config.MySQL{Host: my.Host, Port: my.Port, User: my.User, Password: my.Password, Database: my.Database, ConnectionLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	front, err := native.New(native.Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1", Port: 16430}}, Log: log}, sipfront.NewMux(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := front.Listen(fctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = front.Serve(fctx) }()
	client, err := front.NewClient(0)
	if err != nil {
		t.Fatal(err)
	}

	startUAS(t, "uas-options-200.xml", "127.0.0.44", 16420)
	startUAS(t, "uas-options-503.xml", "127.0.0.45", 16421)
	startUAS(t, "uas-options-404.xml", "127.0.0.47", 16423)
	time.Sleep(200 * time.Millisecond)

	const carrier = "eeeeeeee-0000-4000-8000-000000000001"
	gw := map[string]string{ // name -> sip_gateway_sid
		"ok":     "eeeeeeee-0000-4000-8000-000000000200",
		"busy":   "eeeeeeee-0000-4000-8000-000000000503",
		"silent": "eeeeeeee-0000-4000-8000-000000000408",
		"gone":   "eeeeeeee-0000-4000-8000-000000000404",
	}
	if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, account_sid) VALUES (?, 'pingco', NULL)`, carrier); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrier)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier)
		for _, sid := range gw {
			rdb.Del(ctx, pinger.BlacklistKey(sid))
		}
	})
	for _, g := range []struct {
		sid, ip  string
		port     int
		ping, in bool
	}{
		{gw["ok"], "127.0.0.44", 16420, true, false},
		{gw["busy"], "127.0.0.45", 16421, true, false},
		{gw["silent"], "127.0.0.46", 16422, true, false},
		{gw["gone"], "127.0.0.47", 16423, true, false},
		{"eeeeeeee-0000-4000-8000-000000000000", "127.0.0.48", 16424, false, false}, // not pinged
	} {
		if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound, send_options_ping)
  VALUES (?, ?, ?, ?, 0, 1, ?)`, g.sid, carrier, g.ip, g.port, g.ping); err != nil {
			t.Fatal(err)
		}
	}
	// The healthy gateway starts blacklisted: a 200 lifts it.
	rdb.Set(ctx, pinger.BlacklistKey(gw["ok"]), "1", time.Minute)
	for _, k := range []string{"busy", "silent", "gone"} {
		rdb.Del(ctx, pinger.BlacklistKey(gw[k]))
	}

	rec := &recorder{}
	p := pinger.New(mysqldir.NewCarriers(db, db), redisstore.NewKV(testenv.RueidisClient(t, testenv.Redis(t))), client, rec, pinger.Options{
		Every: time.Hour, TTL: 300 * time.Second, Remove: []int{404}, Timeout: time.Second,
		FromHost: "127.0.0.1", UserAgent: "pinger-test",
	}, log)
	p.Round(ctx)

	if n, _ := rdb.Exists(ctx, pinger.BlacklistKey(gw["ok"])).Result(); n != 0 {
		t.Error("gateway answering 200 is still blacklisted")
	}
	for _, k := range []string{"busy", "silent", "gone"} {
		v, err := rdb.Get(ctx, pinger.BlacklistKey(gw[k])).Result()
		ttl, _ := rdb.TTL(ctx, pinger.BlacklistKey(gw[k])).Result()
		if err != nil || v != "1" || ttl < 295*time.Second || ttl > 300*time.Second {
			t.Errorf("%s gateway: blacklist value %q err %v ttl %s, want \"1\" with TTL 300 s", k, v, err, ttl)
		}
	}
	var ping bool
	if err := db.QueryRow(`SELECT send_options_ping FROM sip_gateways WHERE sip_gateway_sid = ?`, gw["gone"]).Scan(&ping); err != nil || ping {
		t.Errorf("send_options_ping of the 404 gateway = %v (%v), want false", ping, err)
	}
	if err := db.QueryRow(`SELECT send_options_ping FROM sip_gateways WHERE sip_gateway_sid = ?`, gw["busy"]).Scan(&ping); err != nil || !ping {
		t.Errorf("send_options_ping of the 503 gateway = %v (%v), want true", ping, err)
	}
	want := []string{
		"Disabling Options ping for 127.0.0.47 in carrier pingco(" + carrier + ")",
		"Options ping 127.0.0.45:16421;transport=udp unsuccessfully, received: 503",
		"Options ping 127.0.0.46:16422;transport=udp unsuccessfully, received: 408",
		"Options ping 127.0.0.47:16423;transport=udp unsuccessfully, received: 404",
	}
	if got := rec.messages(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A second round: still failing gateways stay blacklisted without a new
	// alert; the disabled one is no longer pinged.
	p.Round(ctx)
	if got := rec.messages(); len(got) != len(want) {
		t.Errorf("second round alerts: %q", got)
	}
}
