package native

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runFront runs a native front with opts (quiet by default) serving h
// until the test ends.
func runFront(t *testing.T, opts Options, h sipfront.Handler) *Front {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quiet()
	}
	// SUBSCRIBE stands for the methods served through sipgo transactions
	// (REGISTER and OPTIONS over UDP take the stateless path).
	f, err := New(opts, h, []string{"REGISTER", "SUBSCRIBE"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = f.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

// loopbackUDPAndTCP listens on loopback UDP and TCP, ports chosen by the system.
var loopbackUDPAndTCP = []config.Listen{{Transport: "udp", Host: "127.0.0.1"}, {Transport: "tcp", Host: "127.0.0.1"}}

// startFront runs a native front on loopback UDP and TCP with h.
func startFront(t *testing.T, h sipfront.Handler, maxInFlight int) *Front {
	t.Helper()
	return runFront(t, Options{Listen: loopbackUDPAndTCP, Loop: sipfront.LoopOptions{MaxInFlight: maxInFlight}}, h)
}

func udpAddr(t *testing.T, f *Front) string {
	t.Helper()
	for _, a := range f.LocalAddrs() {
		if strings.HasPrefix(a, "udp/") {
			return strings.TrimPrefix(a, "udp/")
		}
	}
	t.Fatal("no udp address")
	return ""
}

// exchange sends raw over UDP and returns the first answer.
func exchange(t *testing.T, addr, raw string) *sip.Response {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw = strings.Replace(raw, "127.0.0.1:5090", c.LocalAddr().String(), -1)
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	// The lenient parser: answers echo a garbage To as it was received.
	msg, err := sipmsg.NewParser().ParseSIP(buf[:n])
	if err != nil {
		t.Fatalf("unparseable answer: %v\n%s", err, buf[:n])
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		t.Fatalf("answer is %T", msg)
	}
	return res
}

func TestFront_SBCAddressFormat(t *testing.T) {
	f := startFront(t, sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	}), 0)
	parts := strings.Split(f.SBCAddress(), ",")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "udp/127.0.0.1:") || !strings.HasPrefix(parts[1], "tcp/127.0.0.1:") {
		t.Fatalf("SBCAddress = %q", f.SBCAddress())
	}
	for _, p := range parts {
		if _, err := netip.ParseAddrPort(p[4:]); err != nil {
			t.Fatalf("entry %q: %v", p, err)
		}
	}
}

func TestFront_RequestFieldsAndAnswer(t *testing.T) {
	var (
		mu  sync.Mutex
		got *sipfront.Request
	)
	f := startFront(t, sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		mu.Lock()
		got = r
		mu.Unlock()
		_ = w.Respond(ctx, &sipfront.Response{Code: 200, Headers: []sipfront.Header{{Name: "Expires", Value: "30"}}})
	}), 0)
	res := exchange(t, udpAddr(t, f), fronttest.Register("fields", "<sip:john@jambonz.org>"))
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if h := res.GetHeader("Expires"); h == nil || h.Value() != "30" {
		t.Fatalf("Expires = %v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("handler not called")
	}
	if got.Transport != "udp" || !got.Source.Addr().IsLoopback() || got.SBCAddress != f.SBCAddress() {
		t.Fatalf("request transport=%q source=%v sbc=%q", got.Transport, got.Source, got.SBCAddress)
	}
}

func TestFront_PanicAnswered500(t *testing.T) {
	f := startFront(t, sipfront.HandlerFunc(func(context.Context, sipfront.ResponseWriter, *sipfront.Request) {
		panic("handler exploded")
	}), 0)
	if res := exchange(t, udpAddr(t, f), fronttest.Register("panic", "<sip:john@jambonz.org>")); res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
}

func TestFront_NoAnswerBecomes500(t *testing.T) {
	f := startFront(t, sipfront.HandlerFunc(func(context.Context, sipfront.ResponseWriter, *sipfront.Request) {}), 0)
	if res := exchange(t, udpAddr(t, f), fronttest.Register("silent", "<sip:john@jambonz.org>")); res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
}

func TestFront_GarbageToStillAnswered(t *testing.T) {
	f := startFront(t, sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		code := 200
		if r.Msg.To() == nil {
			code = 403
		}
		_ = w.Respond(ctx, &sipfront.Response{Code: code})
	}), 0)
	res := exchange(t, udpAddr(t, f), fronttest.Register("garbage", "garbage"))
	if res.StatusCode != 403 {
		t.Fatalf("status %d, want 403", res.StatusCode)
	}
	if h := res.GetHeader("To"); h == nil || !strings.HasPrefix(h.Value(), "garbage") {
		t.Fatalf("To in the answer = %v", h)
	}
}

func TestFront_OverloadAnswered503(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := startFront(t, sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		entered <- struct{}{}
		<-release
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	}), 1)
	addr := udpAddr(t, f)
	// Occupy the only slot.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Replace(fronttest.Register("busy", "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first request never reached the handler")
	}
	res := exchange(t, addr, fronttest.Register("overflow", "<sip:john@jambonz.org>"))
	close(release)
	if res.StatusCode != 503 {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	if h := res.GetHeader("Retry-After"); h == nil {
		t.Fatal("503 without Retry-After")
	}
}

// A retransmitted UDP request (same branch) within Timer J gets the stored
// answer again without reaching the handler a second time (UDPTimerJ keeps that
// window at 2 s instead of 32 s, for memory).
func TestFront_UDPRetransmissionAnsweredFromTransaction(t *testing.T) {
	var calls atomic.Int64
	f := startFront(t, sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		calls.Add(1)
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	}), 0)
	c, err := net.Dial("udp", udpAddr(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := strings.Replace(fronttest.Register("retrans", "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
	buf := make([]byte, 65535)
	for i := 0; i < 2; i++ {
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("send %d: no answer: %v", i+1, err)
		}
		if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			t.Fatalf("send %d: answer %q", i+1, strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
	if sip.Timer_J != UDPTimerJ {
		t.Fatalf("sip.Timer_J = %s, want %s", sip.Timer_J, UDPTimerJ)
	}
}
