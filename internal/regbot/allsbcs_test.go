package regbot_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/carrieruas"
)

// allSBCCarriers marks some carriers as registered from every SBC (the
// config file's register_from_all_sbcs; MySQL has no such column).
type allSBCCarriers struct {
	regbot.Carriers
	sids map[string]bool
}

func (c allSBCCarriers) RegisterTargets(ctx context.Context) ([]regbot.Target, error) {
	ts, err := c.Carriers.RegisterTargets(ctx)
	for i := range ts {
		ts[i].AllSBCs = c.sids[ts[i].CarrierSID]
	}
	return ts, err
}

func startRegistrar(t *testing.T, addr string) *carrieruas.UAS {
	t.Helper()
	u, err := carrieruas.Start(carrieruas.Options{Transport: "udp", Addr: addr, Realm: "sip.jambonz.org", User: "foo", Password: "bar"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// Two instances: the all-SBC carrier is registered by both, each with its
// own Contact and its own field in the per-SBC hash; the other carrier by
// the leader alone. One instance shutting down removes its binding and its
// field; the other's binding stays.
func TestRegbot_AllSBCCarrierRegisteredByEveryInstance(t *testing.T) {
	const cluster = "regbot-allsbcs"
	h1, h2 := newHarness(t, 16475), newHarness(t, 16476)
	everywhere := startRegistrar(t, "127.0.0.53:16477")
	leaderOnly := startRegistrar(t, "127.0.0.54:16478")
	a := carrier{sid: uid("a11a11a1", 1), name: "everywhere", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("a11a11a1", 2), host: "127.0.0.53", port: 16477}
	b := carrier{sid: uid("a11a11a1", 3), name: "leader-only", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("a11a11a1", 4), host: "127.0.0.54", port: 16478}
	h1.insert(t, a)
	h1.insert(t, b)
	ctx := context.Background()
	key := regbot.SBCStatusKey(cluster, a.sid)
	h1.rdb.Del(ctx, cluster+":regbot-token", key)
	t.Cleanup(func() { h1.rdb.Del(ctx, cluster+":regbot-token", key) })

	start := func(h *harness) (*regbot.Regbot, func()) {
		rb := regbot.New(regbot.Deps{
			Store: redisstore.NewKV(h.rc), Carriers: allSBCCarriers{h.carriers, map[string]bool{a.sid: true}},
			Client: h.client, PublicAddress: h.front.PublicAddress, Log: h.log,
		}, testOptions(cluster))
		return rb, run(t, rb)
	}
	one, stopOne := start(h1)
	two, stopTwo := start(h2)

	want := []string{"sip:foo@127.0.0.1:16475;transport=udp", "sip:foo@127.0.0.1:16476;transport=udp"}
	eventually(t, 10*time.Second, "a binding per instance", func() bool { return slices.Equal(everywhere.Bindings(), want) })
	eventually(t, 10*time.Second, "the leader-only carrier registered", func() bool { return len(leaderOnly.Bindings()) == 1 })
	fields := func() map[string]map[string]any {
		all, _ := h1.rdb.HGetAll(ctx, key).Result()
		out := map[string]map[string]any{}
		for sbc, v := range all {
			var m map[string]any
			_ = json.Unmarshal([]byte(v), &m)
			out[sbc] = m
		}
		return out
	}
	eventually(t, 5*time.Second, "two ok fields", func() bool {
		f := fields()
		return len(f) == 2 && f["127.0.0.1:16475"]["status"] == "ok" && f["127.0.0.1:16476"]["status"] == "ok"
	})
	if ttl, _ := h1.rdb.PTTL(ctx, key).Result(); ttl <= 0 {
		t.Errorf("per-SBC hash without TTL (%s)", ttl)
	}
	eventually(t, 5*time.Second, "aggregate with both SBCs", func() bool {
		s := h1.registerStatus(t, a.sid)
		sbcs, _ := s["sbcs"].(map[string]any)
		return s["status"] == "ok" && s["reason"] == "200 OK" && len(sbcs) == 2
	})
	if s := h1.registerStatus(t, b.sid); s["status"] != "ok" || s["sbcs"] != nil {
		t.Errorf("leader-only carrier register_status = %v", s)
	}
	if st1, st2 := one.Status(), two.Status(); st1.Leader == st2.Leader || st1.Total+st2.Total != 3 {
		t.Errorf("status one %+v two %+v: want one leader, 3 agents in all", st1, st2)
	}

	// The second instance (whichever leads) shuts down.
	stopTwo()
	if got := everywhere.Bindings(); !slices.Equal(got, want[:1]) {
		t.Errorf("bindings after the second instance stopped: %q, want %q", got, want[:1])
	}
	if f := fields(); len(f) != 1 || f["127.0.0.1:16475"]["status"] != "ok" {
		t.Errorf("per-SBC fields after shutdown: %v", f)
	}
	// The survivor may write its older view concurrently; it corrects it
	// at its next check.
	eventually(t, 5*time.Second, "aggregate with one SBC", func() bool {
		s := h1.registerStatus(t, a.sid)
		sbcs, _ := s["sbcs"].(map[string]any)
		return s["status"] == "ok" && len(sbcs) == 1
	})
	// The leader-only carrier is registered again by the survivor if it
	// was the second's; either way exactly one binding.
	eventually(t, 10*time.Second, "leader-only carrier registered once", func() bool { return len(leaderOnly.Bindings()) == 1 })
	stopOne()
	if got := everywhere.Bindings(); len(got) != 0 {
		t.Errorf("bindings after both stopped: %q", got)
	}
}
