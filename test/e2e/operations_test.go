package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sipclient"
)

// Ports of these tests: SIP 16910-16919, HTTP 16930-16934, StatsD 16935,
// private Redis 16940.

// TestRegisterOverTLSWSAndWSS registers john through the webhook over each
// secure/stream transport a WebRTC client or carrier uses, with a
// certificate made for the test, and checks the stored binding.
func TestRegisterOverTLSWSAndWSS(t *testing.T) {
	rdb := redisClient(t)
	sidecar.Webhook(t, webhookOptions())
	cert := testenv.SelfSignedCert(t, "")
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:16910,tcp:127.0.0.1:16910,tls:127.0.0.1:16911,ws:127.0.0.1:16912,wss:127.0.0.1:16913"
	env["SIP_TLS_CERT_FILE"] = cert.CertFile
	env["SIP_TLS_KEY_FILE"] = cert.KeyFile
	sidecar.Start(t, env, "native front listening")
	sbcAddress := "udp/127.0.0.1:16910,tcp/127.0.0.1:16910,tls/127.0.0.1:16911,ws/127.0.0.1:16912,wss/127.0.0.1:16913"

	for _, tc := range []struct{ transport, target, contactHas string }{
		{"tls", "127.0.0.1:16911", "transport=tls"},
		{"ws", "127.0.0.1:16912", "transport=ws"},
		{"wss", "127.0.0.1:16913", "transport=ws"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cli, err := sipclient.New(&tls.Config{RootCAs: cert.Pool})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res, err := cli.Do(ctx, sipclient.Register{Transport: tc.transport, Target: tc.target,
				User: "john", Realm: "jambonz.org", Password: "1234", Expires: 3600})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER over %s: %d %s", tc.transport, res.StatusCode, res.Reason)
			}
			// Stream transports keep the granted expires (no NAT keepalive cap).
			if h := res.GetHeader("Expires"); h == nil || h.Value() != "300" {
				t.Errorf("Expires = %v, want 300", h)
			}
			b, _, _ := readBinding(t, rdb, "john@jambonz.org")
			if b.Protocol != tc.transport {
				t.Errorf("protocol = %q, want %q", b.Protocol, tc.transport)
			}
			if b.SBCAddress != sbcAddress {
				t.Errorf("sbcAddress = %q, want %q", b.SBCAddress, sbcAddress)
			}
			if !strings.Contains(b.Contact, tc.contactHas) {
				t.Errorf("contact %q lacks %q", b.Contact, tc.contactHas)
			}
			if !strings.HasPrefix(b.Proxy, "sip:127.0.0.1:") {
				t.Errorf("proxy = %q", b.Proxy)
			}
		})
	}
}

// scrape returns the value of every sample of /metrics, keyed by the
// sample's text before the value (name{labels}).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// statsdListener collects StatsD datagrams.
func statsdListener(t *testing.T, addr string) <-chan string {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	lines := make(chan string, 1024)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l != "" {
					lines <- l
				}
			}
		}
	}()
	return lines
}

// TestMetricsAfterSippRun runs REGISTER scenarios over TCP, then checks
// that /metrics moved by exactly what was sent and that the original's
// StatsD metrics reached a StatsD listener.
func TestMetricsAfterSippRun(t *testing.T) {
	redisClient(t)
	sidecar.Webhook(t, webhookOptions())
	lines := statsdListener(t, "127.0.0.1:16935")
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "tcp:127.0.0.1:16914"
	env["HTTP_PORT"] = "16930"
	env["ENABLE_METRICS"] = "1"
	env["STATS_HOST"] = "127.0.0.1"
	env["STATS_PORT"] = "16935"
	env["STATS_TAGS"] = "env:test"
	sidecar.Start(t, env, "native front listening")
	url := "http://127.0.0.1:16930/metrics"
	before := scrape(t, url)

	run := func(scenario, csv string) {
		t.Helper()
		sidecar.Run(t, sidecar.Sipp{Scenario: scenario, CSV: csv, Target: "127.0.0.1:16914",
			LocalPort: 16915, Transport: "t1"})
	}
	run("uac-register-auth-success.xml", "good_user.csv")               // 401, 200
	run("uac-re-register-auth-success.xml", "good_user.csv")            // 200 cached
	run("uac-register-auth-failure-expect-403.xml", "bad_password.csv") // 401, 403

	after := scrape(t, url)
	delta := func(key string) float64 { return after[key] - before[key] }
	for key, want := range map[string]float64{
		`sbc_sip_sidecar_registrations_total{result="registered",status="200",transport="tcp"}`: 1,
		`sbc_sip_sidecar_registrations_total{result="cached",status="200",transport="tcp"}`:     1,
		`sbc_sip_sidecar_registrations_total{result="challenged",status="401",transport="tcp"}`: 2,
		`sbc_sip_sidecar_registrations_total{result="rejected",status="403",transport="tcp"}`:   1,
		`sbc_sip_sidecar_registration_duration_seconds_count{cached="true"}`:                    1,
		`sbc_sip_sidecar_registration_duration_seconds_count{cached="false"}`:                   4,
		`sbc_sip_sidecar_webhook_requests_total{status="200"}`:                                  2,
		`sbc_sip_sidecar_webhook_duration_seconds_count`:                                        2,
		`sbc_sip_sidecar_backend_errors_total{backend="redis"}`:                                 0,
		`sbc_sip_sidecar_backend_errors_total{backend="mysql"}`:                                 0,
		`sbc_sip_sidecar_backend_errors_total{backend="webhook"}`:                               0,
	} {
		if _, ok := after[key]; !ok {
			t.Errorf("%s missing from /metrics", key)
			continue
		}
		if got := delta(key); got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}

	want := map[string]int{
		"sbc.registration.total.response_time":  4,
		"sbc.registration.cached.response_time": 1,
		"app.hook.response_time":                2,
	}
	got := map[string]int{}
	deadline := time.After(5 * time.Second)
	for !sameCounts(got, want) {
		select {
		case l := <-lines:
			name, rest, _ := strings.Cut(l, ":")
			if !strings.Contains(rest, "|h") || !strings.Contains(rest, "env:test") || !strings.Contains(rest, "status:") {
				t.Errorf("statsd line %q: want a histogram with status and global tags", l)
			}
			got[name]++
		case <-deadline:
			t.Fatalf("statsd lines = %v, want %v", got, want)
		}
	}
}

func sameCounts(got, want map[string]int) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestReadyFlipsWhenRedisStops checks /health and /ready against a Redis
// the test stops and restarts.
func TestReadyFlipsWhenRedisStops(t *testing.T) {
	rp := testenv.StartRedis(t, 16940)
	env := sidecar.BaseEnv(t)
	host, port, _ := strings.Cut(rp.Addr(), ":")
	env["JAMBONES_REDIS_HOST"], env["JAMBONES_REDIS_PORT"] = host, port
	env["SIP_LISTEN"] = "udp:127.0.0.1:16916"
	env["HTTP_PORT"] = "16931"
	sidecar.Start(t, env, "native front listening")

	probe := func(path string) (int, map[string]any) {
		t.Helper()
		res, err := http.Get("http://127.0.0.1:16931" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v (%s)", path, err, body)
		}
		return res.StatusCode, v
	}
	if code, _ := probe("/health"); code != 200 {
		t.Errorf("/health = %d", code)
	}
	code, body := probe("/ready")
	if code != 200 {
		t.Fatalf("/ready = %d %v with Redis up", code, body)
	}
	checks, _ := body["checks"].(map[string]any)
	for _, c := range []string{"sip", "redis", "mysql"} {
		if checks[c] != "ok" {
			t.Errorf("check %s = %v", c, checks[c])
		}
	}

	rp.Stop()
	code, body = probe("/ready")
	if code != 503 {
		t.Errorf("/ready = %d %v with Redis stopped, want 503", code, body)
	}
	checks, _ = body["checks"].(map[string]any)
	if checks["redis"] == "ok" || checks["mysql"] != "ok" {
		t.Errorf("checks with Redis stopped = %v", checks)
	}
	if code, _ := probe("/health"); code != 200 {
		t.Errorf("/health = %d with Redis stopped (liveness must not depend on Redis)", code)
	}

	rp.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = probe("/ready")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready = %d %v after Redis restarted", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
