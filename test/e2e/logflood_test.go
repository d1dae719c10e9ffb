package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestLogFlood_RefusalsFromOneSourceAreBounded: 10,000 REGISTERs for an
// unknown realm and 2,000 from a scanner User-Agent, each from one source,
// are all answered, but cost a bounded number of log lines (LOG_SOURCE_LIMIT
// per source and minute, plus two notes), not one line each.
func TestLogFlood_RefusalsFromOneSourceAreBounded(t *testing.T) {
	const target = "127.0.0.1:15300"
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:" + target
	env["JAMBONES_LOGLEVEL"] = "info" // debug lines are not limited
	env["SIP_RATE_LIMIT"] = "0"       // let every request reach the refusal
	env["LOG_SOURCE_LIMIT"] = "20"
	proc := sidecar.Start(t, env, "native front listening")
	start := time.Now()

	floods := []struct {
		name   string
		ip     string
		n      int
		header map[string]string
		answer string
	}{
		{"unknown realm", "127.0.0.61", 10_000, map[string]string{"To": "<sip:john@no-such-realm.example>", "From": "<sip:john@no-such-realm.example>;tag=1"}, "SIP/2.0 403"},
		{"scanner", "127.0.0.62", 2_000, map[string]string{"User-Agent": "friendly-scanner"}, "SIP/2.0 403"},
	}
	for _, f := range floods {
		answered := flood(t, target, f.ip, 15301, f.n, f.header, f.answer)
		// A few datagrams may be lost on a loaded machine; nearly all must
		// have been handled for the bound below to mean anything.
		if answered < f.n*9/10 {
			t.Fatalf("%s: %d of %d REGISTERs answered %q", f.name, answered, f.n, f.answer)
		}
		t.Logf("%s: %d of %d REGISTERs answered %q", f.name, answered, f.n, f.answer)
	}
	elapsed := time.Since(start)

	// The limit allows 20 lines and 2 notes per source and started minute.
	windows := int(elapsed/time.Minute) + 2
	for _, f := range floods { // the last lines may still be in the pipe
		proc.WaitLog(`"` + f.ip)
	}
	proc.WaitLog("log: suppressing lines from this source")
	logs := proc.Logs()
	for _, f := range floods {
		var lines, notes int
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `"`+f.ip) {
				lines++
				if strings.Contains(l, "log: suppressing lines from this source") {
					notes++
				}
			}
		}
		max := (20 + 2) * windows
		t.Logf("%s: %d log lines for %d requests in %s (bound %d)", f.name, lines, f.n, elapsed.Round(time.Millisecond), max)
		if lines > max || lines < 20 {
			t.Errorf("%s: %d log lines mention %s, want 20..%d", f.name, lines, f.ip, max)
		}
		if notes == 0 {
			t.Errorf("%s: no note that lines from %s are suppressed", f.name, f.ip)
		}
	}
}

// flood sends n REGISTERs from ip:port in windows of 100 and counts the
// answers starting with want.
func flood(t *testing.T, target, ip string, port, n int, header map[string]string, want string) int {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port}, mustUDP(target))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 65536)
	answered := 0
	const window = 100
	for sent := 0; sent < n; {
		batch := min(window, n-sent)
		for i := range batch {
			h := map[string]string{"Call-ID": fmt.Sprintf("flood-%s-%d", ip, sent+i)}
			for k, v := range header {
				h[k] = v
			}
			if _, err := conn.Write([]byte(register("udp", port, h))); err != nil {
				t.Fatal(err)
			}
		}
		sent += batch
		for got := 0; got < batch; got++ {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, err := conn.Read(buf)
			if err != nil {
				break // lost: the next window goes on
			}
			if strings.HasPrefix(string(buf[:m]), want) {
				answered++
			}
		}
	}
	return answered
}
