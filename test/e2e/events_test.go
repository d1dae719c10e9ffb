package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/redisbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sipclient"
)

// Ports of the events tests: SIP 17300-17301, HTTP 17302-17303, standalone SIP 17305.

// eventLog collects events from one source (Redis, cli, webhook) and lets
// the test wait for one matching a predicate.
type eventLog struct {
	mu   sync.Mutex
	got  []events.Event
	more chan struct{}
}

func newEventLog() *eventLog { return &eventLog{more: make(chan struct{}, 1)} }

func (l *eventLog) add(raw []byte) {
	var e events.Event
	if json.Unmarshal(raw, &e) != nil {
		return
	}
	l.mu.Lock()
	l.got = append(l.got, e)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
}

func (l *eventLog) all() []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]events.Event(nil), l.got...)
}

// wait returns the first event (after index from) matching match, within 20 s.
func (l *eventLog) wait(t *testing.T, what string, match func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, e := range l.all() {
			if match(e) {
				return e
			}
		}
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("no %s event; got %+v", what, l.all())
		}
	}
}

func is(t events.Type, aor string) func(events.Event) bool {
	return func(e events.Event) bool { return e.Type == t && e.AoR == aor }
}

// count returns how many events match.
func (l *eventLog) count(match func(events.Event) bool) int {
	n := 0
	for _, e := range l.all() {
		if match(e) {
			n++
		}
	}
	return n
}

// eventsReceiver is the customer's events webhook: it checks each POST's
// Jambonz-Signature and records the events; while down it answers 503.
type eventsReceiver struct {
	log    *eventLog
	badSig atomic.Int64
	posts  atomic.Int64
	down   atomic.Bool
}

func (r *eventsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.posts.Add(1)
	body, _ := io.ReadAll(req.Body)
	if r.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	ts, v1, _ := strings.Cut(req.Header.Get("Jambonz-Signature"), ",v1=")
	mac := hmac.New(sha256.New, []byte("evsecret"))
	mac.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
	mac.Write(body)
	if !strings.HasPrefix(ts, "t=") || !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		r.badSig.Add(1)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, raw := range batch {
		r.log.add(raw)
	}
}

// followCLI runs `sbc-sip-sidecar cli events args...` against the service
// of env and collects what it prints.
func followCLI(t *testing.T, env map[string]string, args ...string) *eventLog {
	t.Helper()
	cmd := exec.Command(sidecar.Binary(t), append([]string{"cli", "events"}, args...)...)
	cmd.Env = []string{"SBC_SOCKET_PATH=" + env["SBC_SOCKET_PATH"]}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := newEventLog()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.add(sc.Bytes())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("cli events stderr: %s", stderr.String())
		}
	})
	return l
}

// waitStreaming makes sure a follower is subscribed: it runs probe (an
// un-register and a register, so that each run is a register event) until
// the follower prints a register event.
func waitStreaming(t *testing.T, l *eventLog, reg func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l.count(func(e events.Event) bool { return e.Type == events.Register }) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("cli events printed nothing")
		}
		reg()
		time.Sleep(100 * time.Millisecond)
	}
}

func sipRegister(t *testing.T, cli *sipclient.Client, target, user, password string, expires, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cli.Do(ctx, sipclient.Register{Transport: "udp", Target: target, User: user,
		Realm: "jambonz.org", Password: password, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != want {
		t.Fatalf("REGISTER %s to %s: %d %s, want %d", user, target, res.StatusCode, res.Reason, want)
	}
}

func newSIPClient(t *testing.T) *sipclient.Client {
	t.Helper()
	c, err := sipclient.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sumMetric(samples map[string]float64, name string, labels ...string) float64 {
	n := 0.0
	for k, v := range samples {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			n += v
		}
	}
	return n
}

// TestRegistrationEventsTwoInstances runs two services on one Redis and
// follows the events on the Redis channel, through `cli events` and at the
// webhook: register, a refresh (no event: refresh is off), unregister, a
// short binding lapsing (exactly one expire from the two), wrong passwords
// (auth-failed); then the webhook receiver is down for a while.
func TestRegistrationEventsTwoInstances(t *testing.T) {
	rdb := redisClient(t)
	opts := webhookOptions()
	opts.Users["jambonz.org"]["probe"] = authserver.User{Password: "probe"}
	sidecar.Webhook(t, opts)
	rcv := &eventsReceiver{log: newEventLog()}
	hookSrv := httptest.NewServer(rcv)
	t.Cleanup(hookSrv.Close)

	envOf := func(sip, http string) map[string]string {
		env := sidecar.BaseEnv(t)
		env["SIP_LISTEN"] = "udp:127.0.0.1:" + sip
		env["HTTP_LISTEN"] = "127.0.0.1:" + http
		env["REGISTRATION_EVENTS_EXPIRY_SWEEP_MS"] = "100"
		env["REGISTRATION_EVENTS_WEBHOOK_URL"] = hookSrv.URL + "/events"
		env["REGISTRATION_EVENTS_WEBHOOK_SECRET"] = "evsecret"
		env["REGISTRATION_EVENTS_WEBHOOK_FLUSH_MS"] = "20"
		env["REGISTRATION_EVENTS_WEBHOOK_BATCH"] = "2"
		env["REGISTRATION_EVENTS_WEBHOOK_QUEUE"] = "4"
		env["REGISTRATION_EVENTS_WEBHOOK_RETRY_MS"] = "50"
		env["REGISTRATION_EVENTS_WEBHOOK_RETRY_MAX_MS"] = "200"
		// Wrong passwords are part of the test, not an attack.
		env["AUTH_FAILURE_LIMIT"] = "0"
		env["AUTH_FAILURE_AOR_LIMIT"] = "0"
		return env
	}
	envA, envB := envOf("17300", "17302"), envOf("17301", "17303")
	sidecar.Start(t, envA, "native front listening")
	sidecar.Start(t, envB, "native front listening")
	a, b := "127.0.0.1:17300", "127.0.0.1:17301"

	// The Redis channel, as any consumer would follow it.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sub := rdb.Subscribe(ctx, redisbus.Channel("default"))
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	onRedis := newEventLog()
	go func() {
		for m := range sub.Channel() {
			onRedis.add([]byte(m.Payload))
		}
	}()
	t.Cleanup(func() { sub.Close() })

	// cli events on instance A, filtered to the realm: it must also print
	// what instance B publishes.
	john := newSIPClient(t)
	cliLog := followCLI(t, envA, "--realm", "jambonz.org")
	probe := newSIPClient(t)
	waitStreaming(t, cliLog, func() {
		sipRegister(t, probe, a, "probe", "probe", 0, 200)
		sipRegister(t, probe, a, "probe", "probe", 3600, 200)
	})
	sipRegister(t, john, a, "john", "1234", 3600, 200)

	reg := onRedis.wait(t, "register", is(events.Register, "john@jambonz.org"))
	if reg.Realm != "jambonz.org" || reg.AccountSID == "" || reg.Transport != "udp" || reg.Expires != 300 ||
		!strings.HasPrefix(reg.Source, "127.0.0.1:") || reg.CallID == "" || reg.Contact == "" || reg.SBCAddress == "" {
		t.Errorf("register event %+v", reg)
	}

	// A refresh from the same phone is answered from the binding: no event
	// (REGISTRATION_EVENTS_REFRESH is off). An instance publishes in order,
	// so the next john event of A must be the unregister.
	sipRegister(t, john, a, "john", "1234", 3600, 200)
	sipRegister(t, john, a, "john", "1234", 0, 200)
	onRedis.wait(t, "unregister", is(events.Unregister, "john@jambonz.org"))
	if n := onRedis.count(is(events.Register, "john@jambonz.org")); n != 1 {
		t.Errorf("%d register events for john, want 1 (the re-register is a refresh)", n)
	}
	for _, e := range onRedis.all() {
		if e.Type == events.Refresh {
			t.Errorf("refresh published although REGISTRATION_EVENTS_REFRESH is off: %+v", e)
		}
	}

	// jane's binding on B lapses after 2 s: exactly one expire.
	jane := newSIPClient(t)
	sipRegister(t, jane, b, "jane", "5678", 2, 200)
	onRedis.wait(t, "register of jane", is(events.Register, "jane@jambonz.org"))
	exp := onRedis.wait(t, "expire", is(events.Expire, "jane@jambonz.org"))
	if exp.AccountSID == "" || exp.Contact == "" || exp.Source == "" || exp.Expires != 2 {
		t.Errorf("expire event lacks the binding's details: %+v", exp)
	}
	// A wrong password on each instance: they publish after any expire they
	// might have claimed, so a duplicate would be seen before these.
	sipRegister(t, newSIPClient(t), a, "jane", "wrong", 3600, 403)
	sipRegister(t, newSIPClient(t), b, "john", "wrong", 3600, 403)
	af := onRedis.wait(t, "auth-failed on A", is(events.AuthFailed, "jane@jambonz.org"))
	onRedis.wait(t, "auth-failed on B", is(events.AuthFailed, "john@jambonz.org"))
	if af.Reason == "" || strings.Contains(mustJSON(t, af), "wrong") {
		t.Errorf("auth-failed event %+v", af)
	}
	if n := onRedis.count(is(events.Expire, "jane@jambonz.org")); n != 1 {
		t.Fatalf("%d expire events for jane from two instances, want 1", n)
	}
	if n, _ := rdb.ZScore(ctx, "active-user", "user:jane@jambonz.org").Result(); n != 0 {
		t.Errorf("the lapsed binding is still in active-user")
	}

	// cli events printed all of it, B's events included.
	for _, want := range []func(events.Event) bool{
		is(events.Unregister, "john@jambonz.org"), is(events.Register, "jane@jambonz.org"),
		is(events.Expire, "jane@jambonz.org"), is(events.AuthFailed, "john@jambonz.org"),
	} {
		cliLog.wait(t, "cli", want)
	}
	// The webhook got them, signed.
	for _, want := range []func(events.Event) bool{
		is(events.Register, "john@jambonz.org"), is(events.Unregister, "john@jambonz.org"),
		is(events.Expire, "jane@jambonz.org"), is(events.AuthFailed, "jane@jambonz.org"),
	} {
		rcv.log.wait(t, "webhook", want)
	}
	if n := rcv.badSig.Load(); n != 0 {
		t.Fatalf("%d webhook POSTs with a bad signature", n)
	}

	// The receiver is down: A keeps answering, retries, drops beyond its
	// queue (4) and the batch in hand (2), and delivers the rest once the
	// receiver is back.
	rcv.down.Store(true)
	posts := rcv.posts.Load()
	ghost := newSIPClient(t)
	const burst = 12
	for range burst {
		sipRegister(t, ghost, a, "ghost", "nope", 3600, 403)
	}
	metricsA := "http://127.0.0.1:17302/metrics"
	dropped := func() int {
		return int(sumMetric(scrape(t, metricsA), "sbc_sip_sidecar_registration_events_dropped_total", `sink="webhook"`))
	}
	// The events reach the webhook's queue after the answers: wait for them.
	deadline := time.Now().Add(20 * time.Second)
	for dropped() < burst-4-2 {
		if time.Now().After(deadline) {
			t.Fatalf("webhook drops counted = %d, want at least %d", dropped(), burst-6)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(20 * time.Second)
	for rcv.posts.Load() < posts+2 || sumMetric(scrape(t, metricsA), "sbc_sip_sidecar_registration_events_webhook_requests_total", `result="retry"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no retries while the receiver was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rcv.down.Store(false)
	ghosts := is(events.AuthFailed, "ghost@jambonz.org")
	deadline = time.Now().Add(20 * time.Second)
	for rcv.log.count(ghosts)+dropped() != burst {
		if time.Now().After(deadline) {
			t.Fatalf("after recovery: %d delivered + %d dropped, want %d", rcv.log.count(ghosts), dropped(), burst)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rcv.log.count(ghosts) == 0 || rcv.badSig.Load() != 0 {
		t.Fatalf("after recovery: %d delivered, %d bad signatures", rcv.log.count(ghosts), rcv.badSig.Load())
	}
	// Publishing on Redis lost nothing meanwhile.
	deadline = time.Now().Add(20 * time.Second)
	for onRedis.count(ghosts) != burst {
		if time.Now().After(deadline) {
			t.Fatalf("Redis channel got %d of %d events while the webhook was down", onRedis.count(ghosts), burst)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestRegistrationEventsStandalone: with the embedded store (no Redis)
// `cli events` follows the in-process bus, and a lapsed binding expires.
func TestRegistrationEventsStandalone(t *testing.T) {
	env := standaloneEnv(t, "udp:127.0.0.1:17305")
	env["REGISTRATION_EVENTS_EXPIRY_SWEEP_MS"] = "100"
	env["SIDECAR_STATE_FILE"] = filepath.Join(t.TempDir(), "state")
	sidecar.Start(t, env, "native front listening")
	cliLog := followCLI(t, env, "--type", "register,expire")
	c := newSIPClient(t)
	do := func(expires int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := c.Do(ctx, sipclient.Register{Transport: "udp", Target: "127.0.0.1:17305", User: filedir.DemoUser,
			Realm: filedir.DemoRealm, Password: filedir.DemoPassword, Expires: expires})
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("REGISTER: %v %v", res, err)
		}
	}
	waitStreaming(t, cliLog, func() { do(0); do(1) })
	aor := filedir.DemoUser + "@" + filedir.DemoRealm
	cliLog.wait(t, "expire", is(events.Expire, aor))
	if n := cliLog.count(func(e events.Event) bool { return e.Type != events.Register && e.Type != events.Expire }); n != 0 {
		t.Fatalf("--type register,expire printed %d other events", n)
	}
}
