package regbot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/dnsstub"
)

// failoverOptions make a wait after a failed round long (30 s), so a
// registration within seconds proves the next hop was tried at once.
func failoverOptions(o *regbot.Options) {
	o.RequestTimeout = 300 * time.Millisecond
	o.BackoffInitial = 30 * time.Second
	o.FailureRetryInterval = time.Minute
}

// A carrier with two gateways registering one AoR (register_sip_realm):
// the first does not answer, the agent moves to the second at once and
// the binding lives there.
func TestRegbot_FailsOverToTheNextGateway(t *testing.T) {
	h := newHarness(t, 16466)
	dead := startBlackhole(t, "127.0.0.47:16467")
	alive := startUAS(t, "uas-auth-register.xml", "127.0.0.48", 16468)
	c := carrier{sid: uid("fa11fa11", 1), name: "two-gateways", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("fa11fa11", 2), host: "127.0.0.47", port: 16467}
	h.insert(t, c)
	h.addGateway(t, c.sid, uid("fa11fa11", 3), "127.0.0.48", 16468) // sorts after the first
	rb := h.regbot("regbot-failover", failoverOptions)
	run(t, rb)

	eventually(t, 10*time.Second, "registered", func() bool {
		s := h.registerStatus(t, c.sid)
		return s != nil && s["status"] == "ok"
	})
	ag := rb.Agents()
	if len(ag) != 1 || ag[0].Gateway != "127.0.0.48:16468" || ag[0].State != "registered" {
		t.Errorf("agents = %+v, want one registered at the second gateway", ag)
	}
	if n := len(dead.times()); n != 1 {
		t.Errorf("first gateway got %d REGISTERs, want 1 (then failover)", n)
	}
	if tr := alive.trace(); !containsAll(tr, "REGISTER sip:sip.jambonz.org SIP/2.0", "Authorization: Digest") {
		t.Errorf("second gateway trace:\n%s", tail(tr, 40))
	}
}

// A gateway name whose SRV lookup (a DNS server on loopback) gives two
// targets: the agent tries them by priority and registers at the second
// when the first does not answer.
func TestRegbot_FailsOverBetweenSRVTargets(t *testing.T) {
	dns, err := dnsstub.Start("127.0.0.49:16469", dnsstub.Records{
		A: map[string][]string{"gw1.carrier.test": {"127.0.0.50"}, "gw2.carrier.test": {"127.0.0.51"}},
		SRV: map[string][]dnsstub.SRV{"_sip._udp.carrier.test": {
			{Priority: 20, Weight: 10, Port: 16471, Target: "gw2.carrier.test."},
			{Priority: 10, Weight: 10, Port: 16470, Target: "gw1.carrier.test."},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	h := newHarness(t, 16472)
	h.resolver = dns.Resolver()
	dead := startBlackhole(t, "127.0.0.50:16470")
	startUAS(t, "uas-auth-register.xml", "127.0.0.51", 16471)
	c := carrier{sid: uid("5e7f5e7f", 1), name: "srv-carrier", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("5e7f5e7f", 2), host: "carrier.test"}
	h.insert(t, c)
	rb := h.regbot("regbot-srv", failoverOptions)
	run(t, rb)

	eventually(t, 10*time.Second, "registered", func() bool {
		s := h.registerStatus(t, c.sid)
		return s != nil && s["status"] == "ok"
	})
	if ag := rb.Agents(); len(ag) != 1 || ag[0].Gateway != "127.0.0.51:16471" {
		t.Errorf("agents = %+v, want registered at the priority-20 target", ag)
	}
	if n := len(dead.times()); n != 1 {
		t.Errorf("priority-10 target got %d REGISTERs, want 1 (tried first)", n)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
