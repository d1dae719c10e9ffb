package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestMixed_ConfigFileWithRedis: carriers from the config file, state in
// Redis: the reg trunk's ephemeral gateway and the token are Redis keys
// other jambonz parts read.
func TestMixed_ConfigFileWithRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	const cluster = "e2e-mixed-file"
	const carrier = "d0d0d0d0-0000-4000-8000-000000000001"
	rdb.Del(ctx, regbot.TokenKey(cluster))
	rdb.HDel(ctx, regbot.EphemeralKey("127.0.0.63"), carrier)
	carrierUAS(t, filepath.Join(testenv.ScenarioDir(t), "uas-auth-register.xml"), "127.0.0.63", 16721)
	time.Sleep(200 * time.Millisecond)

	config := filepath.Join(t.TempDir(), "mixed.yaml")
	yaml := fmt.Sprintf(`voip_carriers:
  - {voip_carrier_sid: %s, name: reg-trunk, trunk_type: reg, requires_register: true, register_username: foo, register_password: bar, register_sip_realm: sip.jambonz.org}
sip_gateways:
  - {sip_gateway_sid: d0d0d0d0-0000-4000-8000-000000000002, voip_carrier_sid: %s, ipv4: 127.0.0.63, port: 16721, outbound: true}
`, carrier, carrier)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := sidecar.BaseEnv(t)
	delete(env, "JAMBONES_MYSQL_HOST")
	env["SIP_LISTEN"] = "udp:127.0.0.1:16720"
	env["JAMBONES_CLUSTER_ID"] = cluster
	env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	proc := sidecar.Start(t, env, "native front listening", "--config", config)

	eventuallyTrue(t, 15*time.Second, "eph-gw-ip in Redis", func() bool {
		v, err := rdb.HGet(ctx, regbot.EphemeralKey("127.0.0.63"), carrier).Int64()
		return err == nil && v > time.Now().Unix()
	})
	if token, _ := rdb.Get(ctx, regbot.TokenKey(cluster)).Result(); token == "" {
		t.Error("no regbot token in Redis")
	}
	proc.Stop()
	if n, _ := rdb.HExists(ctx, regbot.EphemeralKey("127.0.0.63"), carrier).Result(); n {
		t.Error("ephemeral gateway left in Redis after shutdown")
	}
	if !proc.WaitLog("directory: config file") {
		t.Error("not in config-file mode")
	}
}

// TestMixed_MySQLWithEmbeddedStore: carriers from MySQL, state in the
// embedded store: register_status is written to MySQL.
func TestMixed_MySQLWithEmbeddedStore(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	carrierUAS(t, filepath.Join(testenv.ScenarioDir(t), "uas-auth-register.xml"), "127.0.0.64", 16731)
	time.Sleep(200 * time.Millisecond)

	const carrier, gateway = "d1d1d1d1-0000-4000-8000-000000000001", "d1d1d1d1-0000-4000-8000-000000000002"
	if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, 'mixed-carrier', 1, 'foo', 'sip.jambonz.org', 'bar')`, carrier); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound)
  VALUES (?, ?, '127.0.0.64', 16731, 0, 1)`, gateway, carrier); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE voip_carrier_sid = ?`, carrier)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier)
	})

	env := sidecar.BaseEnv(t)
	delete(env, "JAMBONES_REDIS_HOST")
	delete(env, "JAMBONES_REDIS_PORT")
	env["SIDECAR_STATE_FILE"] = filepath.Join(t.TempDir(), "sidecar.state")
	env["SIP_LISTEN"] = "udp:127.0.0.1:16730"
	env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
	proc := sidecar.Start(t, env, "native front listening")

	eventuallyTrue(t, 15*time.Second, "register_status ok in MySQL", func() bool {
		var s sql.NullString
		_ = db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier).Scan(&s)
		var m map[string]any
		_ = json.Unmarshal([]byte(s.String), &m)
		return m["status"] == "ok"
	})
	if out, _ := sidecar.CLI(t, env, "regbot", "status"); !strings.Contains(out, "Registered: 1") {
		t.Errorf("cli regbot status:\n%s", out)
	}
	proc.Stop()
	if !proc.WaitLog("store: embedded") {
		t.Error("not using the embedded store")
	}
}
