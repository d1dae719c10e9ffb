package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sipclient"
)

// openIdle opens n TCP connections from src to target that send nothing.
func openIdle(t *testing.T, src, target string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", target)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", i, src, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// closedByService waits (up to a generous 15 s) for the service to close c.
func closedByService(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// registered registers john over transport until a 200 comes, within 30 s:
// while idle connections hold the caps, a new connection may be refused.
func registered(t *testing.T, pool *x509.CertPool, transport, target string) bool {
	t.Helper()
	cli, err := sipclient.New(&tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cli.Do(ctx, sipclient.Register{Transport: transport, Target: target,
			User: "john", Realm: "jambonz.org", Password: "1234", Expires: 3600})
		cancel()
		if err == nil && res.StatusCode == 200 {
			return true
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprint(res.StatusCode, " ", res.Reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("REGISTER over %s to %s: no 200 within 30 s (last: %s)", transport, target, last)
	return false
}

func alive(t *testing.T, proc *sidecar.Proc) {
	t.Helper()
	select {
	case <-proc.Done():
		t.Fatalf("service exited (code %d)", proc.ExitCode())
	default:
	}
}

func openFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}

// rssBytes reads VmRSS of pid.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestHostileIdleConnectionsBeyondTheFdLimit: more idle TCP connections
// than the service has file descriptors, from several addresses (each under
// the per-IP cap). Started with 256 open files, the connection cap shrinks
// to fit and the rest is refused; with the limit lowered while it runs, the
// accepts fail with EMFILE and back off. Either way the process stays up and
// UDP, TCP and TLS REGISTERs are answered.
func TestHostileIdleConnectionsBeyondTheFdLimit(t *testing.T) {
	for _, mode := range []string{"started with 256 files", "limit lowered to 256 while running"} {
		t.Run(mode, func(t *testing.T) {
			sidecar.Webhook(t, webhookOptions())
			cert := testenv.SelfSignedCert(t, "")
			env := sidecar.BaseEnv(t)
			env["JAMBONES_LOGLEVEL"] = "info"
			env["SIP_LISTEN"] = "udp:127.0.0.1:17100,tcp:127.0.0.1:17100,tls:127.0.0.1:17101"
			env["SIP_TLS_CERT_FILE"] = cert.CertFile
			env["SIP_TLS_KEY_FILE"] = cert.KeyFile
			env["SIP_HANDSHAKE_TIMEOUT_MS"] = "1000"
			// While the descriptors are exhausted the webhook cannot be
			// dialled, and a failed hook call counts against the source IP
			// (docs/security.md): how many fail depends on timing, and ten
			// within the window (over both subtests, or a -count=2 rerun, on
			// one Redis) would ban 127.0.0.1 and fail the registrations this
			// test checks. Bans are not what it tests.
			env["AUTH_FAILURE_LIMIT"] = "0"
			var proc *sidecar.Proc
			if strings.HasPrefix(mode, "started") {
				proc = sidecar.StartLimited(t, env, "native front listening", 256)
			} else {
				proc = sidecar.Start(t, env, "native front listening")
				out, err := exec.Command("prlimit", "--pid", strconv.Itoa(proc.Pid()), "--nofile=256:256").CombinedOutput()
				if err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatalf("prlimit: %v %s", err, out)
					}
					t.Skipf("prlimit: %v %s", err, out)
				}
			}
			// 6 addresses x 50 = 300 connections, more than 256 files.
			for i := 2; i <= 7; i++ {
				openIdle(t, fmt.Sprintf("127.0.0.%d", i), "127.0.0.1:17100", 50)
			}
			alive(t, proc)
			registered(t, nil, "udp", "127.0.0.1:17100")
			registered(t, nil, "tcp", "127.0.0.1:17100")
			registered(t, cert.Pool, "tls", "127.0.0.1:17101")
			alive(t, proc)
			logs := proc.Logs()
			if strings.HasPrefix(mode, "started") {
				if !strings.Contains(logs, "open files limit lowers the connection cap") || !strings.Contains(logs, "connection refused, cap reached") {
					t.Errorf("the cap did not follow the open files limit")
				}
			} else if !strings.Contains(logs, "accept failed, retrying") {
				t.Errorf("accepts never failed: the test did not exhaust the descriptors")
			}
		})
	}
}

// TestHostileSilentConnectionsTimeOut: a TCP connection that sends nothing,
// one that never finishes its request and a TLS one that never sends a
// ClientHello are closed after SIP_HANDSHAKE_TIMEOUT_MS.
func TestHostileSilentConnectionsTimeOut(t *testing.T) {
	sidecar.Webhook(t, webhookOptions())
	cert := testenv.SelfSignedCert(t, "")
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:17110,tcp:127.0.0.1:17110,tls:127.0.0.1:17111,ws:127.0.0.1:17112"
	env["SIP_TLS_CERT_FILE"] = cert.CertFile
	env["SIP_TLS_KEY_FILE"] = cert.KeyFile
	env["SIP_HANDSHAKE_TIMEOUT_MS"] = "300"
	proc := sidecar.Start(t, env, "native front listening")

	tcp := openIdle(t, "127.0.0.1", "127.0.0.1:17110", 1)[0]
	slow := openIdle(t, "127.0.0.1", "127.0.0.1:17110", 1)[0]
	if _, err := slow.Write([]byte("REGISTER sip:jambonz.org SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	noHello := openIdle(t, "127.0.0.1", "127.0.0.1:17111", 1)[0]
	ws := openIdle(t, "127.0.0.1", "127.0.0.1:17112", 1)[0]
	for name, c := range map[string]net.Conn{"silent TCP": tcp, "unfinished request": slow, "TLS without ClientHello": noHello, "WS without upgrade": ws} {
		if !closedByService(c) {
			t.Errorf("%s: kept open past the handshake timeout", name)
		}
	}
	// A client that completes its request in time is served.
	registered(t, cert.Pool, "tls", "127.0.0.1:17111")
	alive(t, proc)
}

// TestHostileManyIdleConnections: 5,000 idle TCP connections from 50
// loopback addresses (100 each, the per-IP cap) do not stop UDP and TCP
// REGISTERs; the 101st connection from one address is refused at once. The
// service's RSS with them is logged and bounded (figures in
// docs/security.md).
func TestHostileManyIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	ensureFiles(t, 12000)
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["JAMBONES_LOGLEVEL"] = "info"
	env["SIP_LISTEN"] = "udp:127.0.0.1:17120,tcp:127.0.0.1:17120"
	env["SIP_HANDSHAKE_TIMEOUT_MS"] = "600000"
	proc := sidecar.Start(t, env, "native front listening")
	pid := proc.Pid()
	base := rssBytes(t, pid)

	var idle []net.Conn
	for i := 1; i <= 50; i++ {
		idle = append(idle, openIdle(t, fmt.Sprintf("127.0.1.%d", i), "127.0.0.1:17120", 100)...)
	}
	deadline := time.Now().Add(60 * time.Second)
	for openFDs(pid) < 5000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := openFDs(pid); n < 5000 {
		t.Fatalf("service holds %d descriptors, want the 5,000 connections accepted", n)
	}
	silent := rssBytes(t, pid)

	extra := openIdle(t, "127.0.1.1", "127.0.0.1:17120", 1)[0]
	if !closedByService(extra) {
		t.Errorf("101st connection from one address was not refused")
	}
	registered(t, nil, "udp", "127.0.0.1:17120")
	registered(t, nil, "tcp", "127.0.0.1:17120")

	// The same connections with an unfinished request each: now the SIP
	// stack holds them (reader and buffer), the worst case within the
	// handshake timeout.
	for _, c := range idle {
		if _, err := c.Write([]byte("REGISTER sip:jambonz.org SIP/2.0\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	// Let the service read them (no assertion rides on this wait).
	time.Sleep(2 * time.Second)
	partial := rssBytes(t, pid)
	registered(t, nil, "udp", "127.0.0.1:17120")
	registered(t, nil, "tcp", "127.0.0.1:17120")
	alive(t, proc)
	t.Logf("RSS: %d MB at start, %d MB with 5,000 silent connections, %d MB with 5,000 unfinished requests",
		base>>20, silent>>20, partial>>20)
	const bound = 200 << 20
	if silent > bound || partial > bound {
		t.Errorf("RSS %d / %d MB exceeds %d MB", silent>>20, partial>>20, bound>>20)
	}
}

// ensureFiles raises this process's open files limit (inherited by the
// service) to n when it is lower.
func ensureFiles(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(rl.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		msg := fmt.Sprintf("open files limit %d, need %d: %v", rl.Cur, n, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// heapAfterGC reads HeapAlloc after a forced collection from the service's
// pprof endpoint.
func heapAfterGC(t *testing.T, httpPort int) int64 {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no HeapAlloc in the heap profile")
	return 0
}

// TestHostileUDPSources: datagrams from 100,000 distinct source addresses
// (sockets on 127.0.x.y) leave no state behind: the heap after GC comes back
// to its baseline once SIP_UDP_STATE_TTL has passed. Before, sipgo kept
// ~107 bytes per source for good (+10 MB here). A quarter of the datagrams
// are 1-byte junk, the rest look like SIP (a start line) so that they reach
// the stack.
func TestHostileUDPSources(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100,000 datagrams")
	}
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["JAMBONES_LOGLEVEL"] = "info"
	env["SIP_LISTEN"] = "udp:127.0.0.1:17130,tcp:127.0.0.1:17130"
	env["SIP_UDP_STATE_TTL"] = "1"
	env["HTTP_PORT"] = "17131"
	env["PPROF"] = "1"
	proc := sidecar.Start(t, env, "native front listening")
	registered(t, nil, "udp", "127.0.0.1:17130")
	base := heapAfterGC(t, 17131)

	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 17130}
	const sources = 100000
	sipLike := []byte("SIP/2.0 200 OK\r\n\r\n")
	for i := 0; i < sources; i++ {
		src := &net.UDPAddr{IP: net.IPv4(127, 2+byte(i>>16), byte(i>>8), byte(i))}
		c, err := net.ListenUDP("udp", src)
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
		payload := sipLike
		if i%4 == 0 {
			payload = []byte{'x'}
		}
		_, _ = c.WriteTo(payload, target)
		_ = c.Close()
		if i%2000 == 1999 {
			// Pace the flood so the socket buffer takes it: this test is
			// about state per source, not load.
			time.Sleep(20 * time.Millisecond)
		}
	}
	alive(t, proc)
	registered(t, nil, "udp", "127.0.0.1:17130")

	// Measured: +2 to +3 MB stay (sipgo's pool map keeps the capacity of two
	// rounds, 32,768 entries, whatever the number of sources); without the
	// rounds the same flood left +10.5 MB.
	const margin = 5 << 20
	var after int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = heapAfterGC(t, 17131)
		if after < base+margin || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("heap after GC: %d KB before, %d KB after %d sources", base>>10, after>>10, sources)
	if after >= base+margin {
		t.Errorf("heap after GC grew from %d KB to %d KB after datagrams from %d sources", base>>10, after>>10, sources)
	}
}

// TestMalformedStrictness: a SIP version other than 2.0 is answered 505,
// repeated To/From/Call-ID/CSeq and conflicting Content-Length 400.
func TestMalformedStrictness(t *testing.T) {
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:17140,tcp:127.0.0.1:17140"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:17140"
	cases := []struct {
		name   string
		edit   func(string) string
		want   string
		reason string
	}{
		{"SIP/3.0", func(s string) string { return strings.Replace(s, " SIP/2.0\r\n", " SIP/3.0\r\n", 1) }, "505", "Only SIP/2.0"},
		{"two To", func(s string) string { return addHeader(s, "t: <sip:mallory@jambonz.org>") }, "400", "Duplicate To"},
		{"two From", func(s string) string { return addHeader(s, "From: <sip:mallory@jambonz.org>;tag=9") }, "400", "Duplicate From"},
		{"two Call-ID", func(s string) string { return addHeader(s, "i: other-call") }, "400", "Duplicate Call-ID"},
		{"two CSeq", func(s string) string { return addHeader(s, "CSeq: 7 REGISTER") }, "400", "Duplicate CSeq"},
	}
	for _, transport := range []string{"udp", "tcp"} {
		for i, tc := range cases {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				lport := 17150 + i
				answer := exchange(t, transport, target, lport, tc.edit(register(transport, lport, nil)))
				if !strings.HasPrefix(answer, "SIP/2.0 "+tc.want) {
					t.Fatalf("answer = %q, want SIP/2.0 %s", firstLine(answer), tc.want)
				}
				if !strings.Contains(answer, tc.reason) {
					t.Errorf("answer lacks %q:\n%s", tc.reason, answer)
				}
			})
		}
	}
	// Conflicting lengths over UDP (the datagram bounds the message).
	t.Run("udp/conflicting Content-Length", func(t *testing.T) {
		msg := strings.Replace(register("udp", 17160, nil), "Content-Length: 0\r\n\r\n", "Content-Length: 0\r\nl: 4\r\n\r\nbody", 1)
		answer := exchange(t, "udp", target, 17160, msg)
		if !strings.HasPrefix(answer, "SIP/2.0 400") || !strings.Contains(answer, "Conflicting Content-Length") {
			t.Fatalf("answer = %q, want 400 Conflicting Content-Length", answer)
		}
	})
	alive(t, proc)
}

// addHeader inserts a header line after the request line.
func addHeader(msg, line string) string {
	i := strings.Index(msg, "\r\n")
	return msg[:i+2] + line + "\r\n" + msg[i+2:]
}

// TestDrachtioStrictness: the drachtio front refuses the same requests (the
// stand-in passes them through verbatim; a real drachtio-server may refuse
// them itself first, with the same answer).
func TestDrachtioStrictness(t *testing.T) {
	sidecar.Webhook(t, webhookOptions())
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) {
			sipPort, ctl := peerPorts(kind, 17170, 19170)
			startThroughDrachtio(t, kind, sipPort, ctl, nil)
			target := fmt.Sprintf("127.0.0.1:%d", sipPort)
			for i, tc := range []struct{ name, msg, want string }{
				{"SIP/3.0", strings.Replace(register("udp", sipPort+1, nil), " SIP/2.0\r\n", " SIP/3.0\r\n", 1), "505"},
				{"two To", addHeader(register("udp", sipPort+2, nil), "t: <sip:mallory@jambonz.org>"), "400"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					answer := exchange(t, "udp", target, sipPort+1+i, tc.msg)
					if !strings.HasPrefix(answer, "SIP/2.0 "+tc.want) {
						t.Fatalf("answer = %q, want %s", firstLine(answer), tc.want)
					}
				})
			}
		})
	}
}
