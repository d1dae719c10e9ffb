package native

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
)

// nonceCounter answers like the registrar's digest stage: the first use of a
// nonce count is accepted (200), any later use of the same one is a replay
// (403), so a request handled twice is visible in the answer.
type nonceCounter struct {
	mu    sync.Mutex
	seen  map[string]bool
	calls atomic.Int64
	gate  chan struct{} // when set, each request waits for it
}

func (n *nonceCounter) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
	n.calls.Add(1)
	if n.gate != nil {
		<-n.gate
	}
	auth := r.Header("Authorization")
	n.mu.Lock()
	replay := n.seen[auth]
	n.seen[auth] = true
	n.mu.Unlock()
	if replay {
		_ = w.Respond(ctx, &sipfront.Response{Code: 403, Reason: "Nonce Replay"})
		return
	}
	_ = w.Respond(ctx, &sipfront.Response{Code: 200, Headers: []sipfront.Header{{Name: "Contact", Value: "<sip:john@127.0.0.1:5090>;expires=3600"}}})
}

const authorization = `Authorization: Digest username="john", realm="jambonz.org", nonce="n1", uri="sip:jambonz.org", response="00", qop=auth, nc=00000001, cnonce="c"` + "\r\n"

// authenticatedRegister is a REGISTER with credentials from c.
func authenticatedRegister(c net.Conn, id string) string {
	raw := strings.Replace(fronttest.Register(id, "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
	return strings.Replace(raw, "Content-Length: 0\r\n", authorization+"Content-Length: 0\r\n", 1)
}

func readAnswer(t *testing.T, c net.Conn) string {
	t.Helper()
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return string(buf[:n])
}

// A retransmitted authenticated REGISTER (same source, branch, CSeq) gets the
// very same 200 (same To tag) from the answer cache and never reaches the
// handler again: its nonce count would be refused as a replay.
func TestFastPath_RetransmittedAuthenticatedRegisterNotReprocessed(t *testing.T) {
	h := &nonceCounter{seen: map[string]bool{}}
	f := startFront(t, h, 0)
	c, err := net.Dial("udp", udpAddr(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := authenticatedRegister(c, "auth-retrans")
	var answers []string
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, readAnswer(t, c))
	}
	if !strings.HasPrefix(answers[0], "SIP/2.0 200 OK\r\n") {
		t.Fatalf("first answer %q", answers[0])
	}
	for i, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("retransmission %d answered differently:\n%s\nfirst:\n%s", i+1, a, answers[0])
		}
	}
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
	if n := f.resent.Load(); n != 2 {
		t.Fatalf("%d answers resent from the cache, want 2", n)
	}
	// A new request (new branch and CSeq) with the same credentials is
	// handled, and refused as the replay it is.
	next := strings.Replace(strings.Replace(raw, "z9hG4bK-native-auth-retrans", "z9hG4bK-native-next", 1), "CSeq: 1 ", "CSeq: 2 ", 1)
	if _, err := c.Write([]byte(next)); err != nil {
		t.Fatal(err)
	}
	if a := readAnswer(t, c); !strings.HasPrefix(a, "SIP/2.0 403") {
		t.Fatalf("new request with a used nonce count: %q", strings.SplitN(a, "\r\n", 2)[0])
	}
}

// A retransmission that arrives while the request is still being handled is
// absorbed: one answer, one handling.
func TestFastPath_RetransmissionWhileHandlingAbsorbed(t *testing.T) {
	h := &nonceCounter{seen: map[string]bool{}, gate: make(chan struct{})}
	f := startFront(t, h, 0)
	c, err := net.Dial("udp", udpAddr(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := authenticatedRegister(c, "auth-pending")
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "request handled", func() bool { return h.calls.Load() == 1 })
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retransmission absorbed", func() bool { return f.absorbed.Load() == 1 })
	close(h.gate)
	if a := readAnswer(t, c); !strings.HasPrefix(a, "SIP/2.0 200") {
		t.Fatalf("answer %q", strings.SplitN(a, "\r\n", 2)[0])
	}
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1", n)
	}
}

// A flood of distinct branches does not grow the answer cache beyond its
// bound, and the front keeps answering.
func TestFastPath_AnswerCacheBoundedUnderFlood(t *testing.T) {
	var calls atomic.Int64
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		calls.Add(1)
		_ = w.Respond(ctx, &sipfront.Response{Code: 401})
	})
	const bound = 64
	f := runFront(t, Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, maxAnswers: bound}, h)
	c, err := net.Dial("udp", udpAddr(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 1000
	for i := 0; i < n; i++ {
		raw := strings.Replace(fronttest.Register(fmt.Sprint("flood-", i), "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(readAnswer(t, c), "SIP/2.0 401") {
			t.Fatalf("request %d not answered 401", i)
		}
		if size := f.answers.len(); size > bound {
			t.Fatalf("answer cache holds %d requests after %d, bound %d", size, i+1, bound)
		}
	}
	if calls.Load() != n {
		t.Fatalf("handled %d of %d distinct requests", calls.Load(), n)
	}
}

func TestAnswerCache_Bounded(t *testing.T) {
	c := newAnswerCache(100, time.Hour)
	src := netip.MustParseAddrPort("192.0.2.1:5060")
	for i := 0; i < 10000; i++ {
		k := answerKey{src: src, branch: fmt.Sprint("z9hG4bK-", i), seq: 1, method: "REGISTER", callID: "c"}
		if st, _ := c.begin(k); st != answerNew {
			t.Fatalf("key %d: state %d, want new", i, st)
		}
		c.finish(k, []byte("SIP/2.0 200 OK\r\n\r\n"))
		if c.len() > 100 {
			t.Fatalf("%d entries after %d keys, bound 100", c.len(), i+1)
		}
	}
}

func TestAnswerCache_States(t *testing.T) {
	now := time.Unix(0, 0)
	c := newAnswerCache(100, time.Second)
	c.now, c.rotated = func() time.Time { return now }, now
	k := answerKey{src: netip.MustParseAddrPort("192.0.2.1:5060"), branch: "b", seq: 1, method: "REGISTER", callID: "c"}
	if st, _ := c.begin(k); st != answerNew {
		t.Fatalf("first: %d", st)
	}
	if st, _ := c.begin(k); st != answerPending {
		t.Fatalf("while handled: %d", st)
	}
	c.finish(k, []byte("answer"))
	if st, raw := c.begin(k); st != answerDone || string(raw) != "answer" {
		t.Fatalf("answered: %d %q", st, raw)
	}
	// Kept across one rotation, gone after two.
	other := func(i int) answerKey { return answerKey{branch: fmt.Sprint(i)} }
	now = now.Add(time.Second)
	c.begin(other(1))
	if st, _ := c.begin(k); st != answerDone {
		t.Fatalf("after one period: %d", st)
	}
	now = now.Add(time.Second)
	c.begin(other(2))
	if st, _ := c.begin(k); st != answerNew {
		t.Fatalf("after two periods: %d", st)
	}
	c.forget(k)
	if st, _ := c.begin(k); st != answerNew {
		t.Fatalf("after forget: %d", st)
	}
}

// Each UDP listen address is served by the configured number of sockets,
// all bound to the same port with SO_REUSEPORT, and requests from many
// sources (spread over them by the kernel) are all answered.
func TestFront_UDPSocketsUseReusePort(t *testing.T) {
	if !reusePortSupported {
		t.Skip("SO_REUSEPORT is used on Linux only")
	}
	var calls atomic.Int64
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		calls.Add(1)
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	})
	f := runFront(t, Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, UDPSockets: 3}, h)
	f.mu.Lock()
	socks := f.udpGroups[0].socks
	f.mu.Unlock()
	if len(socks) != 3 {
		t.Fatalf("%d sockets, want 3", len(socks))
	}
	for i, s := range socks {
		if s.LocalAddr().String() != socks[0].LocalAddr().String() {
			t.Fatalf("socket %d bound to %s, socket 0 to %s", i, s.LocalAddr(), socks[0].LocalAddr())
		}
		rc, err := s.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT) }); err != nil || gerr != nil {
			t.Fatalf("socket %d: getsockopt: %v %v", i, err, gerr)
		}
		if v != 1 {
			t.Fatalf("socket %d: SO_REUSEPORT = %d", i, v)
		}
	}
	addr := udpAddr(t, f)
	for i := 0; i < 30; i++ {
		if res := exchange(t, addr, fronttest.Register(fmt.Sprint("rp-", i), "<sip:john@jambonz.org>")); res.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
	}
	if calls.Load() != 30 {
		t.Fatalf("handled %d of 30", calls.Load())
	}
}

// OPTIONS takes the stateless path too when routed; SUBSCRIBE (any other
// method) still goes through a sipgo transaction, and both are answered.
func TestFastPath_OtherMethodsKeepTheStack(t *testing.T) {
	var methods sync.Map
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		methods.Store(string(r.Msg.Method), r.Transport)
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	})
	f := runFront(t, Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}}, h)
	addr := udpAddr(t, f)
	for _, m := range []string{"REGISTER", "SUBSCRIBE"} {
		raw := strings.Replace(strings.Replace(fronttest.Register("m-"+m, "<sip:john@jambonz.org>"), "REGISTER sip:", m+" sip:", 1), "1 REGISTER", "1 "+m, 1)
		if res := exchange(t, addr, raw); res.StatusCode != 200 {
			t.Fatalf("%s: %d", m, res.StatusCode)
		}
		if tr, _ := methods.Load(m); tr != "udp" {
			t.Fatalf("%s: transport %v", m, tr)
		}
	}
	if n := f.ua.TransportLayer().Pool("udp").Size(); n < 2 {
		t.Fatalf("pool holds %d entries: the SUBSCRIBE source should be in it", n)
	}
}

// The answer kept for retransmissions is the bytes sent, at their exact
// size (not the buffer it was built in).
func TestUDPResponder_KeepsTheAnswerAtItsSize(t *testing.T) {
	msg, err := sip.NewParser().ParseSIP([]byte(fronttest.Register("keep", "<sip:john@jambonz.org>")))
	if err != nil {
		t.Fatal(err)
	}
	c := newAnswerCache(10, time.Hour)
	k := answerKey{branch: "keep"}
	c.begin(k)
	out := &captured{}
	w := &udpResponder{req: msg.(*sip.Request), sock: out, key: k, answers: c}
	if err := w.Respond(context.Background(), &sipfront.Response{Code: 200}); err != nil {
		t.Fatal(err)
	}
	st, raw := c.begin(k)
	if st != answerDone || string(raw) != string(out.last) || !strings.HasPrefix(string(raw), "SIP/2.0 200 OK\r\n") {
		t.Fatalf("kept %d %q, sent %q", st, raw, out.last)
	}
	if cap(raw) > len(raw)+len(raw)/4 { // an allocation's size class, not a build buffer
		t.Errorf("kept answer has capacity %d for %d bytes", cap(raw), len(raw))
	}
}

// A request that waited too long for a worker is dropped unanswered and
// forgotten: the client's retransmission is then served as a new request
// (not absorbed as pending, not answered from the cache).
func TestFastPath_StaleRequestDroppedAndRetransmissionServed(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		if calls.Add(1) == 1 {
			<-release
		}
		_ = w.Respond(ctx, &sipfront.Response{Code: 200, Headers: []sipfront.Header{{Name: "Contact", Value: "<sip:john@127.0.0.1:5090>;expires=3600"}}})
	})
	c0 := &clock{}
	f := runFront(t, Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, UDPWorkers: 1,
		UDPQueueWait: 200 * time.Millisecond, now: c0.now}, h)
	c, err := net.Dial("udp", udpAddr(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := strings.Replace(fronttest.Register("stale-first", "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
	queued := strings.Replace(fronttest.Register("stale-queued", "<sip:john@jambonz.org>"), "127.0.0.1:5090", c.LocalAddr().String(), -1)
	if _, err := c.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first request on the only worker", func() bool { return calls.Load() == 1 })
	if _, err := c.Write([]byte(queued)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second request queued", func() bool {
		f.workers.mu.Lock()
		defer f.workers.mu.Unlock()
		return f.workers.queue.len() == 1
	})
	c0.advance(time.Second)
	close(release)
	if a := readAnswer(t, c); !strings.Contains(a, "stale-first") {
		t.Fatalf("first answer is not the first request's:\n%s", a)
	}
	waitFor(t, "queued request dropped", func() bool { return f.shed.Load() == 1 })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1 (the stale request is not handled)", n)
	}
	// The retransmission is a new request.
	if _, err := c.Write([]byte(queued)); err != nil {
		t.Fatal(err)
	}
	if a := readAnswer(t, c); !strings.HasPrefix(a, "SIP/2.0 200") || !strings.Contains(a, "stale-queued") {
		t.Fatalf("retransmission answered:\n%s", a)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want 2", n)
	}
	if n := f.absorbed.Load() + f.resent.Load(); n != 0 {
		t.Fatalf("%d retransmissions absorbed or resent, want 0", n)
	}
}
