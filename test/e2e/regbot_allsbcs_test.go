package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/carrieruas"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestRegbot_AllSBCsEachInstanceHoldsItsOwnBinding runs two services with
// JAMBONES_REGBOT_ALL_SBCS=1 against the same Redis and MySQL: both
// register the carrier with their own Contact, each has its field in
// <cluster>:regbot-sbc-status:<carrier>, register_status aggregates them;
// when one stops, its binding and field go and the other's stay.
func TestRegbot_AllSBCsEachInstanceHoldsItsOwnBinding(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	const cluster = "e2e-allsbcs"
	const carrier, gateway = "a5a5a5a5-0000-4000-8000-000000000001", "a5a5a5a5-0000-4000-8000-000000000002"
	key := regbot.SBCStatusKey(cluster, carrier)
	rdb.Del(ctx, cluster+":regbot-token", key)
	t.Cleanup(func() { rdb.Del(ctx, cluster+":regbot-token", key) })

	uas, err := carrieruas.Start(carrieruas.Options{Transport: "udp", Addr: "127.0.0.66:16496", Realm: "sip.jambonz.org", User: "foo", Password: "bar"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(uas.Close)
	if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, 'e2e-allsbcs', 1, 'foo', 'sip.jambonz.org', 'bar')`, carrier); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound)
  VALUES (?, ?, '127.0.0.66', 16496, 0, 1)`, gateway, carrier); err != nil {
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
		env["JAMBONES_REGBOT_ALL_SBCS"] = "1"
		env["JAMBONES_REGBOT_START_DELAY_MAX_MS"] = "1"
		env["JAMBONES_REGBOT_STATUS_INTERVAL_MS"] = "500"
		env["SEND_OPTIONS_PING_INTERVAL"] = "3600"
		return sidecar.Start(t, env, "native front listening")
	}
	one, two := start("16497"), start("16498")

	want := []string{"sip:foo@127.0.0.1:16497;transport=udp", "sip:foo@127.0.0.1:16498;transport=udp"}
	eventuallyTrue(t, 10*time.Second, "a binding per instance", func() bool { return slices.Equal(uas.Bindings(), want) })
	status := func() (string, int) {
		var s sql.NullString
		_ = db.QueryRow(`SELECT register_status FROM voip_carriers WHERE voip_carrier_sid = ?`, carrier).Scan(&s)
		var m struct {
			Status string                     `json:"status"`
			SBCs   map[string]json.RawMessage `json:"sbcs"`
		}
		_ = json.Unmarshal([]byte(s.String), &m)
		return m.Status, len(m.SBCs)
	}
	eventuallyTrue(t, 5*time.Second, "register_status ok from 2 SBCs", func() bool { st, n := status(); return st == "ok" && n == 2 })
	if fields, _ := rdb.HKeys(ctx, key).Result(); !slices.Equal(sorted(fields), []string{"127.0.0.1:16497", "127.0.0.1:16498"}) {
		t.Errorf("per-SBC fields %q", fields)
	}

	two.Stop()
	if got := uas.Bindings(); !slices.Equal(got, want[:1]) {
		t.Errorf("bindings after one instance stopped: %q, want %q", got, want[:1])
	}
	if fields, _ := rdb.HKeys(ctx, key).Result(); !slices.Equal(fields, []string{"127.0.0.1:16497"}) {
		t.Errorf("per-SBC fields after shutdown %q", fields)
	}
	// The survivor may write its older view concurrently; it corrects it
	// at its next check.
	eventuallyTrue(t, 5*time.Second, "register_status ok from 1 SBC", func() bool { st, n := status(); return st == "ok" && n == 1 })
	one.Stop()
	if got := uas.Bindings(); len(got) != 0 {
		t.Errorf("bindings after both stopped: %q", got)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
