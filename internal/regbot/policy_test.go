package regbot_test

import (
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
)

// The carrier answers 423 Min-Expires: 7200; the agent re-registers at once
// asking for 7200 and the 423 is not counted as a failure.
func TestRegbot_423ReRegistersWithMinExpires(t *testing.T) {
	h := newHarness(t, 16460)
	uas := startUAS(t, "uas-register-423.xml", "127.0.0.44", 16461)
	c := carrier{sid: uid("42342342", 1), name: "brief", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("42342342", 2), host: "127.0.0.44", port: 16461}
	h.insert(t, c)
	// A 423 would wait a minute if it were handled as a failure.
	rb := h.regbot("regbot-policy-423", func(o *regbot.Options) { o.FailureRetryInterval = time.Minute })
	run(t, rb)
	eventually(t, 10*time.Second, "registered", func() bool {
		s := h.registerStatus(t, c.sid)
		return s != nil && s["status"] == "ok"
	})
	if s := h.registerStatus(t, c.sid); s["expires"] != float64(7200) || s["cseq"] != "2 REGISTER" {
		t.Errorf("register_status = %v", s)
	}
	// The Expires of each REGISTER, in order.
	var expires []string
	for _, m := range regexp.MustCompile(`(?m)^Expires: (\d+)`).FindAllStringSubmatch(uas.trace(), -1) {
		expires = append(expires, m[1])
	}
	if len(expires) < 2 || expires[0] != "3600" || expires[1] != "7200" {
		t.Errorf("Expires sent %v, want [3600 7200 ...] (sipp echoes the second)", expires)
	}
	if !strings.Contains(uas.trace(), "Contact: <sip:foo@sip.jambonz.org;transport=udp>;expires=7200") {
		t.Error("the re-register's Contact does not carry expires=7200")
	}
	ag := rb.Agents()
	if len(ag) != 1 || ag[0].State != "registered" || ag[0].Failures != 0 || ag[0].Expires != 7200 || ag[0].Decision != regbot.DecisionRefresh {
		t.Errorf("agents = %+v", ag)
	}
}

// The carrier answers 503 Retry-After: 3; the next attempt comes after 3 s,
// not after the failure retry interval (a minute here).
func TestRegbot_503RetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t, 16462)
	startUAS(t, "uas-register-503-retry-after.xml", "127.0.0.45", 16463)
	c := carrier{sid: uid("50350350", 1), name: "maintenance", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("50350350", 2), host: "127.0.0.45", port: 16463}
	h.insert(t, c)
	rb := h.regbot("regbot-policy-503", func(o *regbot.Options) { o.FailureRetryInterval = time.Minute })
	run(t, rb)

	var seen regbot.AgentStatus
	eventually(t, 10*time.Second, "the retry-after decision", func() bool {
		ag := rb.Agents()
		if len(ag) == 1 && ag[0].Decision == regbot.DecisionRetryAfter {
			seen = ag[0]
			return true
		}
		return false
	})
	decided := time.Now()
	if seen.State != "failed" || seen.LastAnswer != "503 Service Unavailable" || seen.Failures != 0 || seen.NextAttempt == "" {
		t.Errorf("agent after the 503 = %+v", seen)
	}
	if s := h.registerStatus(t, c.sid); s["status"] != "fail" || s["reason"] != "503 Service Unavailable" {
		t.Errorf("register_status after the 503 = %v", s)
	}
	eventually(t, 20*time.Second, "registered", func() bool {
		s := h.registerStatus(t, c.sid)
		return s != nil && s["status"] == "ok"
	})
	// Lower bound: the agent waited (no earlier than 3 s after the 503,
	// minus the polling delay). Upper bound: far below the minute.
	if d := time.Since(decided); d < 2500*time.Millisecond || d > 30*time.Second {
		t.Errorf("registered %s after the 503, want about 3 s", d)
	}
}

// blackhole is a carrier that receives REGISTERs and never answers; it
// records when each new transaction (Via branch) arrived.
type blackhole struct {
	mu       sync.Mutex
	arrivals []time.Time
	branches map[string]bool
}

func startBlackhole(t *testing.T, addr string) *blackhole {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	b := &blackhole{branches: map[string]bool{}}
	branch := regexp.MustCompile(`branch=([^;\s,]+)`)
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := branch.FindSubmatch(buf[:n])
			if m == nil || !strings.HasPrefix(string(buf[:n]), "REGISTER ") {
				continue
			}
			b.mu.Lock()
			if !b.branches[string(m[1])] {
				b.branches[string(m[1])] = true
				b.arrivals = append(b.arrivals, time.Now())
			}
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *blackhole) times() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.arrivals...)
}

// A carrier that does not answer is retried with growing intervals (backoff
// from 200 ms, doubling), never counted towards disabling.
func TestRegbot_TimeoutBacksOffWithGrowingIntervals(t *testing.T) {
	h := newHarness(t, 16464)
	bh := startBlackhole(t, "127.0.0.46:16465")
	c := carrier{sid: uid("40840840", 1), name: "silent", requiresRegister: true, user: "foo", password: "bar",
		realm: "sip.jambonz.org", gatewaySID: uid("40840840", 2), host: "127.0.0.46", port: 16465}
	h.insert(t, c)
	rb := h.regbot("regbot-policy-timeout", func(o *regbot.Options) {
		o.RequestTimeout = 200 * time.Millisecond
		o.BackoffInitial = 200 * time.Millisecond
		o.FailureRetryInterval = 10 * time.Second
		o.FailureThreshold = 1 // a counted failure would disable at once
	})
	run(t, rb)
	// Waits after the attempts: [100,200], [200,400], [400,800], [800,1600] ms.
	eventually(t, 20*time.Second, "5 attempts", func() bool { return len(bh.times()) >= 5 })
	at := bh.times()
	first, last := at[1].Sub(at[0]), at[4].Sub(at[3])
	// The fourth wait is at least 800 ms, the first at most 200 ms plus the
	// 200 ms timeout: the margin absorbs a busy machine.
	if last <= first {
		t.Errorf("intervals did not grow: first %s, fourth %s", first, last)
	}
	ag := rb.Agents()
	if len(ag) != 1 || ag[0].Decision != regbot.DecisionBackoff || ag[0].Failures != 0 || ag[0].LastAnswer != "408 Request Timeout" || ag[0].State != "failed" {
		t.Errorf("agents = %+v", ag)
	}
	if len(h.alerts.messages()) != 0 {
		t.Errorf("alerts %q: a timeout must not disable", h.alerts.messages())
	}
}
