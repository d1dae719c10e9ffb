package native

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
)

// flakyListener fails its first accepts with errs, then hands out conns.
type flakyListener struct {
	errs  chan error
	conns chan net.Conn
	done  chan struct{}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *flakyListener) Close() error   { close(l.done); return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

func TestGuardListener_AcceptErrorsDoNotStopIt(t *testing.T) {
	fl := &flakyListener{errs: make(chan error, 8), conns: make(chan net.Conn, 1), done: make(chan struct{})}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, errors.New("anything else")} {
		fl.errs <- &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	g := newConnGuard(Limits{}.withDefaults(), logging.NewThrottle(quiet(), time.Second))
	ln := newGuardListener(fl, g, "tcp")
	server, client := net.Pipe()
	fl.conns <- server
	go func() { _, _ = client.Write([]byte("R")) }()

	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after 4 errors: %v", err)
	}
	b := make([]byte, 4)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "R" {
		t.Fatalf("first byte lost: %q %v", b[:n], err)
	}
	_ = ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	_ = c.Close()
	if n := g.open(); n != 0 {
		t.Fatalf("%d connections counted after close", n)
	}
}

func TestNextBackoff(t *testing.T) {
	var d time.Duration
	var got []time.Duration
	for i := 0; i < 10; i++ {
		d = nextBackoff(d)
		got = append(got, d)
	}
	if got[0] != 5*time.Millisecond || got[1] != 10*time.Millisecond || got[9] != time.Second {
		t.Fatalf("back-off sequence %v", got)
	}
}

func TestGuardConn_BindingKeepsConnection(t *testing.T) {
	g := newConnGuard(Limits{HandshakeTimeout: time.Hour, IdleTimeout: time.Minute}.withDefaults(), logging.NewThrottle(quiet(), time.Second))
	server, client := net.Pipe()
	defer client.Close()
	c, ok := g.admit(server, "tcp")
	if !ok {
		t.Fatal("not admitted")
	}
	defer c.Close()
	c.active()
	if left := time.Until(c.deadline); left > time.Minute {
		t.Fatalf("after a request: deadline in %v, want <= idle timeout", left)
	}
	c.bound(3600 * time.Second)
	if left := time.Until(c.deadline); left < 3600*time.Second {
		t.Fatalf("after REGISTER 200 Expires 3600: deadline in %v", left)
	}
	c.active()
	if left := time.Until(c.deadline); left < 3600*time.Second {
		t.Fatalf("a later request shortened the binding's hold: %v", left)
	}
	c.bound(0)
	if left := time.Until(c.deadline); left > time.Minute {
		t.Fatalf("after un-register: deadline in %v, want <= idle timeout", left)
	}
}

func TestGrantedExpires(t *testing.T) {
	cases := []struct {
		hs   []sipfront.Header
		want time.Duration
	}{
		{[]sipfront.Header{{Name: "Contact", Value: "<sip:a@b>;expires=300"}, {Name: "Expires", Value: "120"}}, 120 * time.Second},
		{[]sipfront.Header{{Name: "Contact", Value: "<sip:a@b>;expires=300"}, {Name: "Contact", Value: "<sip:c@d>;Expires = 900"}}, 900 * time.Second},
		{[]sipfront.Header{{Name: "Expires", Value: "0"}}, 0},
		{nil, 3600 * time.Second},
	}
	for i, c := range cases {
		if got := grantedExpires(c.hs); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

// guardedFront runs a front on loopback TCP (and UDP) with limits.
func guardedFront(t *testing.T, lim Limits, h sipfront.Handler) (*Front, string) {
	t.Helper()
	f := runFront(t, Options{Listen: loopbackUDPAndTCP, Limits: lim}, h)
	for _, a := range f.LocalAddrs() {
		if strings.HasPrefix(a, "tcp/") {
			return f, strings.TrimPrefix(a, "tcp/")
		}
	}
	t.Fatal("no tcp address")
	return nil, ""
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByPeer waits (bounded, generously) for the server to close c.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFront_ConnectionCaps(t *testing.T) {
	f, addr := guardedFront(t, Limits{MaxConnections: 3, MaxConnectionsPerIP: 2, HandshakeTimeout: time.Hour}, sipfront.NewMux())
	a1 := dialFrom(t, "127.0.0.1", addr)
	a2 := dialFrom(t, "127.0.0.1", addr)
	waitFor(t, "two connections admitted", func() bool { return f.StreamConnections() == 2 })
	a3 := dialFrom(t, "127.0.0.1", addr)
	if !closedByPeer(a3) {
		t.Fatal("third connection from one IP was not refused")
	}
	b1 := dialFrom(t, "127.0.0.2", addr)
	waitFor(t, "third connection admitted", func() bool { return f.StreamConnections() == 3 })
	b2 := dialFrom(t, "127.0.0.3", addr)
	if !closedByPeer(b2) {
		t.Fatal("connection beyond the total cap was not refused")
	}
	if n := f.StreamConnections(); n != 3 {
		t.Fatalf("%d connections open, want the 3 first kept", n)
	}
	_, _, _ = a1, a2, b1
}

func TestFront_HandshakeTimeoutClosesSilentAndSlowConnections(t *testing.T) {
	f, addr := guardedFront(t, Limits{HandshakeTimeout: 100 * time.Millisecond}, sipfront.NewMux())
	silent := dialFrom(t, "127.0.0.1", addr)
	slow := dialFrom(t, "127.0.0.1", addr)
	if _, err := slow.Write([]byte("REGISTER sip:jambonz.org SIP/2.0\r\nVia: ")); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(silent) {
		t.Fatal("a connection that sent nothing was kept")
	}
	if !closedByPeer(slow) {
		t.Fatal("a connection that never completed a request was kept")
	}
	waitFor(t, "slots released", func() bool { return f.StreamConnections() == 0 })
}

func TestFront_UDPSourcesDoNotAccumulate(t *testing.T) {
	var seen atomic.Int32
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		seen.Add(1)
		_ = w.Respond(ctx, &sipfront.Response{Code: 401})
	})
	f := runFront(t, Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, udpRoundDatagrams: 25}, h)
	addr := udpAddr(t, f)
	pool := f.ua.TransportLayer().Pool("udp")

	// Garbage from many sources is dropped before sipgo records its source.
	for i := 0; i < 300; i++ {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte{'x'})
		_ = c.Close()
	}
	const n = 400
	for i := 0; i < n; i++ {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		raw := strings.Replace(fronttest.Register(fmt.Sprint(i), "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
		if i%2 == 0 {
			// A method of the sipgo path: its source enters the pool.
			raw = strings.Replace(strings.Replace(raw, "REGISTER sip:", "SUBSCRIBE sip:", 1), "1 REGISTER", "1 SUBSCRIBE", 1)
		}
		_, _ = c.Write([]byte(raw))
		_ = c.Close()
		// Stay well within the socket buffer: this test is about state, not load.
		if i%50 == 49 {
			waitFor(t, "requests handled", func() bool { return seen.Load() == int32(i+1) })
		}
	}
	waitFor(t, "requests handled", func() bool { return seen.Load() == n })
	if size := pool.Size(); size > 2*25+1 {
		t.Fatalf("UDP pool holds %d entries after %d sources (%d of them SUBSCRIBE), want <= two rounds (50) + listener", size, n, n/2)
	}
	if f.udpRounds.Load() == 0 {
		t.Fatal("no reader round ended")
	}
	// Still answering after the rounds.
	if res := exchange(t, addr, fronttest.Register("after", "<sip:john@jambonz.org>")); res.StatusCode != 401 {
		t.Fatalf("after rounds: %d", res.StatusCode)
	}
}

// TestFront_RegisteredConnectionKeptIdleOneClosed: with a short idle
// timeout, a TCP connection whose REGISTER was answered 200 stays open while
// one whose REGISTER was refused is closed.
func TestFront_RegisteredConnectionKeptIdleOneClosed(t *testing.T) {
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		if strings.Contains(r.Msg.GetHeader("To").Value(), "bound") {
			_ = w.Respond(ctx, &sipfront.Response{Code: 200, Headers: []sipfront.Header{{Name: "Expires", Value: "300"}}})
			return
		}
		_ = w.Respond(ctx, &sipfront.Response{Code: 401})
	})
	idle := 200 * time.Millisecond
	f, addr := guardedFront(t, Limits{HandshakeTimeout: idle, IdleTimeout: idle}, h)
	send := func(c net.Conn, to string) string {
		t.Helper()
		raw := strings.Replace(fronttest.Register(to, "<sip:"+to+"@jambonz.org>"), "SIP/2.0/UDP 127.0.0.1:5090", "SIP/2.0/TCP "+c.LocalAddr().String(), 1)
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return line
	}
	bound := dialFrom(t, "127.0.0.1", addr)
	if got := send(bound, "bound"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("bound: %q", got)
	}
	refused := dialFrom(t, "127.0.0.1", addr)
	if got := send(refused, "refused"); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Fatalf("refused: %q", got)
	}
	if !closedByPeer(refused) {
		t.Fatal("connection without a binding kept past the idle timeout")
	}
	time.Sleep(2 * idle)
	_ = bound.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := bound.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection carrying a binding was closed: %v", err)
	}
	if n := f.StreamConnections(); n != 1 {
		t.Fatalf("%d connections open, want the registered one", n)
	}
}
