package regbot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

func testOptions(cluster string) regbot.Options {
	return regbot.Options{
		Regbot: config.Regbot{
			DefaultExpires:         3600,
			MinExpires:             30,
			FailureRetryInterval:   4500 * time.Millisecond, // sipp's UAS keeps a finished call 4 s
			FailureThreshold:       2,
			RegisterResponseRemove: []int{403},
			BatchSize:              10,
			BatchSleep:             10 * time.Millisecond,
			UserAgent:              "regbot-test",
			StatusInterval:         300 * time.Millisecond,
		},
		ClusterID:         cluster,
		UnregisterTimeout: 3 * time.Second,
	}
}

func (h *harness) regbot(cluster string, opts ...func(*regbot.Options)) *regbot.Regbot {
	o := testOptions(cluster)
	for _, f := range opts {
		f(&o)
	}
	deps := regbot.Deps{
		Store: redisstore.NewKV(h.rc), Carriers: h.carriers, Client: h.client, Alerter: h.alerts,
		PublicAddress: h.front.PublicAddress, Log: h.log, Cipher: h.cipher,
	}
	if h.resolver != nil {
		deps.Resolver = h.resolver
	}
	return regbot.New(deps, o)
}

func run(t *testing.T, rb *regbot.Regbot) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rb.Run(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestRegbot_RegistersRetriesDisablesAndFollowsChanges(t *testing.T) {
	h := newHarness(t, 16400)
	good := startUAS(t, "uas-auth-register.xml", "127.0.0.40", 16410)
	refuser := startUAS(t, "uas-auth-register2.xml", "127.0.0.41", 16411)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(tail(refuser.trace(), 80))
		}
	})
	added := startUAS(t, "uas-auth-register.xml", "127.0.0.42", 16412)

	a := carrier{sid: uid("aaaaaaaa", 1), name: "westco", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", fromUser: "reguser", fromDomain: "regdomain",
		gatewaySID: uid("aaaaaaaa", 2), host: "127.0.0.40", port: 16410}
	b := carrier{sid: uid("bbbbbbbb", 1), name: "refuser", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("bbbbbbbb", 2), host: "127.0.0.41", port: 16411}
	h.insert(t, a)
	h.insert(t, b)

	rb := h.regbot("regbot-test-1")
	stop := run(t, rb)

	// The good carrier registers after a digest challenge.
	eventually(t, 10*time.Second, "register_status ok", func() bool {
		s := h.registerStatus(t, a.sid)
		return s != nil && s["status"] == "ok"
	})
	s := h.registerStatus(t, a.sid)
	if s["reason"] != "200 OK" || s["callId"] != a.gatewaySID || s["cseq"] != "2 REGISTER" || s["expires"] != float64(600) {
		t.Errorf("register_status = %v", s)
	}
	if ts, _ := s["timestamp"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp = %v", s["timestamp"])
	}
	trace := good.trace()
	for _, want := range []string{
		"REGISTER sip:sip.jambonz.org SIP/2.0",
		"Call-ID: " + a.gatewaySID,
		"From: <sip:reguser@regdomain>;tag=",
		"To: <sip:reguser@regdomain>",
		"Contact: <sip:reguser@sip.jambonz.org;transport=udp>;expires=3600",
		"Expires: 3600",
		"User-Agent: regbot-test",
		"CSeq: 1 REGISTER",
		"CSeq: 2 REGISTER",
		`Authorization: Digest username="foo", realm="sip.jambonz.org"`,
		"Via: SIP/2.0/UDP 127.0.0.1:16400;",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("carrier did not receive %q", want)
		}
	}

	// The refusing carrier is retried, then disabled at the threshold (2).
	eventually(t, 20*time.Second, "requires_register = 0", func() bool {
		var rr bool
		_ = h.db.QueryRow(`SELECT requires_register FROM voip_carriers WHERE voip_carrier_sid = ?`, b.sid).Scan(&rr)
		return !rr
	})
	if s := h.registerStatus(t, b.sid); s["status"] != "fail" || s["reason"] != "403 Forbidden" {
		t.Errorf("register_status of refused carrier = %v", s)
	}
	wantAlert := "Disabling Outbound Registration for carrier refuser (sid:" + b.sid + ")"
	if got := h.alerts.messages(); len(got) != 1 || got[0] != wantAlert {
		t.Errorf("alerts = %q, want [%q]", got, wantAlert)
	}
	eventually(t, 5*time.Second, "1 agent after disabling", func() bool { return rb.Status().Total == 1 })
	if st := rb.Status(); !st.Leader || st.Registered != 1 {
		t.Errorf("status = %+v", st)
	}

	// A carrier added while running is picked up at the next check.
	c := carrier{sid: uid("cccccccc", 1), name: "newco", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("cccccccc", 2), host: "127.0.0.42", port: 16412}
	h.insert(t, c)
	eventually(t, 10*time.Second, "added carrier registered", func() bool {
		s := h.registerStatus(t, c.sid)
		return s != nil && s["status"] == "ok"
	})
	eventually(t, 5*time.Second, "2 registered", func() bool { st := rb.Status(); return st.Total == 2 && st.Registered == 2 })

	// A removed carrier stops; the other keeps running untouched.
	before := strings.Count(good.trace(), "CSeq: ")
	h.remove(t, a.sid)
	eventually(t, 5*time.Second, "1 agent after removal", func() bool { return rb.Status().Total == 1 })
	if after := strings.Count(good.trace(), "CSeq: "); after != before {
		t.Errorf("removed carrier was sent more requests (%d -> %d lines)", before, after)
	}

	// Shutdown as leader un-registers (Expires: 0). sipp keeps a finished
	// call for 4 s: wait until the refresh would reach a new call.
	time.Sleep(4200 * time.Millisecond)
	stop()
	if tr := added.trace(); !strings.Contains(tr, "Expires: 0") {
		t.Errorf("no un-register on shutdown:\n%s", tail(tr, 40))
	}
	if n, _ := h.rdb.Exists(context.Background(), "regbot-test-1:regbot-token").Result(); n != 0 {
		t.Error("token not released on shutdown")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestRegbot_OneLeaderAndTakeover(t *testing.T) {
	h := newHarness(t, 16401)
	const cluster = "regbot-test-2"
	ctx := context.Background()
	h.rdb.Del(ctx, cluster+":regbot-token")
	one, two := h.regbot(cluster), h.regbot(cluster)
	stopOne := run(t, one)
	stopTwo := run(t, two)
	eventually(t, 5*time.Second, "a leader", func() bool { return one.Status().Leader || two.Status().Leader })
	time.Sleep(700 * time.Millisecond) // two more checks each
	if one.Status().Leader == two.Status().Leader {
		t.Fatalf("leaders: one=%v two=%v", one.Status().Leader, two.Status().Leader)
	}
	leader, other, stopLeader := one, two, stopOne
	if two.Status().Leader {
		leader, other, stopLeader = two, one, stopTwo
	}
	token, _ := h.rdb.Get(ctx, cluster+":regbot-token").Result()
	if token != leader.Status().Token {
		t.Fatalf("token %q is not the leader's %q", token, leader.Status().Token)
	}
	ttl, _ := h.rdb.PTTL(ctx, cluster+":regbot-token").Result()
	if ttl <= 0 || ttl > 1300*time.Millisecond {
		t.Errorf("token TTL = %s, want (0, 1.3s] for a 300ms interval", ttl)
	}

	stopLeader()
	eventually(t, 2*time.Second, "takeover", func() bool { return other.Status().Leader })
	if token, _ := h.rdb.Get(ctx, cluster+":regbot-token").Result(); token != other.Status().Token {
		t.Errorf("token %q after takeover, want %q", token, other.Status().Token)
	}
}

func TestRegbot_StandsDownWhenTokenTaken(t *testing.T) {
	h := newHarness(t, 16402)
	const cluster = "regbot-test-3"
	ctx := context.Background()
	h.rdb.Del(ctx, cluster+":regbot-token")
	startUAS(t, "uas-auth-register.xml", "127.0.0.43", 16413)
	c := carrier{sid: uid("dddddddd", 1), name: "regtrunk", trunkType: "reg", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("dddddddd", 2), host: "127.0.0.43", port: 16413}
	h.insert(t, c)
	h.rdb.HDel(ctx, "eph-gw-ip:127.0.0.43", c.sid)

	rb := h.regbot(cluster)
	run(t, rb)
	eventually(t, 10*time.Second, "registered", func() bool { return rb.Status().Registered == 1 })

	// A reg trunk's gateway address becomes an ephemeral gateway.
	var exp int64
	eventually(t, 5*time.Second, "eph-gw-ip entry", func() bool {
		v, err := h.rdb.HGet(ctx, "eph-gw-ip:127.0.0.43", c.sid).Int64()
		exp = v
		return err == nil
	})
	want := time.Now().Add(600 * time.Second).Unix()
	if exp < want-5 || exp > want+1 {
		t.Errorf("ephemeral gateway expiry %d, want about %d (now + 600 s granted)", exp, want)
	}
	if ttl, _ := h.rdb.TTL(ctx, "eph-gw-ip:127.0.0.43").Result(); ttl <= 7000*time.Second || ttl > 7200*time.Second {
		t.Errorf("eph-gw-ip TTL = %s, want 7200 s", ttl)
	}

	// Another instance's token (as after a network split): stand down,
	// stop registering, delete the ephemeral gateway.
	h.rdb.Set(ctx, cluster+":regbot-token", "someone-else", time.Minute)
	// Status shows the agents gone as soon as they are taken out of the set;
	// their ephemeral gateways are deleted as each one stops, just after.
	eventually(t, 3*time.Second, "stood down", func() bool { st := rb.Status(); return !st.Leader && st.Total == 0 })
	eventually(t, 3*time.Second, "ephemeral gateway deleted after standing down", func() bool {
		n, err := h.rdb.HExists(ctx, "eph-gw-ip:127.0.0.43", c.sid).Result()
		return err == nil && !n
	})
	if token, _ := h.rdb.Get(ctx, cluster+":regbot-token").Result(); token != "someone-else" {
		t.Errorf("the other holder's token was overwritten: %q", token)
	}
	h.rdb.Del(ctx, cluster+":regbot-token")
}

// A paced start longer than the token lives must not lose the token: the
// renewal runs beside the sync.
func TestRegbot_KeepsTokenDuringLongPacedStart(t *testing.T) {
	h := newHarness(t, 16403)
	const cluster = "regbot-test-4"
	ctx := context.Background()
	h.rdb.Del(ctx, cluster+":regbot-token")
	for i := 0; i < 30; i++ {
		// Nothing listens there: the agents just retry.
		h.insert(t, carrier{sid: uid("99999999", i), name: "slow", requiresRegister: true, user: fmt.Sprintf("u%d", i), password: "p",
			realm: "slow.example.com", gatewaySID: uid("99999999", 100+i),
			host: "127.0.0.1", port: 16404 + i%10})
	}
	rb := h.regbot(cluster, func(o *regbot.Options) { o.BatchSize = 1; o.BatchSleep = 100 * time.Millisecond })
	run(t, rb)
	eventually(t, 5*time.Second, "leader", func() bool { return rb.Status().Leader })
	// 30 agents at 1 per 100 ms take ~3 s; the token lives 1.3 s unrenewed.
	for i := 0; i < 25; i++ {
		time.Sleep(100 * time.Millisecond)
		if token, _ := h.rdb.Get(ctx, cluster+":regbot-token").Result(); token != rb.Status().Token {
			t.Fatalf("token %q during the paced start, want ours", token)
		}
	}
	eventually(t, 10*time.Second, "all 30 agents", func() bool { return rb.Status().Total == 30 })
}
