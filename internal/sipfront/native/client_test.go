package native

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// peer is a bare UDP socket acting as the far end: it records what arrives
// and from where, and answers 200 when asked to.
type peer struct {
	pc     net.PacketConn
	answer bool
	got    chan received
}

type received struct {
	from string
	msg  *sip.Request
}

func newPeer(t *testing.T, addr string, answer bool) *peer {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{pc: pc, answer: answer, got: make(chan received, 16)}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := sip.NewParser().ParseSIP(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			req, ok := m.(*sip.Request)
			if !ok {
				continue
			}
			p.got <- received{from: from.String(), msg: req}
			if p.answer {
				res := sip.NewResponseFromRequest(req, 200, "OK", nil)
				_, _ = pc.WriteTo([]byte(res.String()), from)
			}
		}
	}()
	return p
}

func newTestFront(t *testing.T, port int) *Front {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := New(Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1", Port: port}}, Log: log}, sipfront.NewMux(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = f.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func options(t *testing.T, target string) *sip.Request {
	t.Helper()
	var uri sip.Uri
	if err := sip.ParseUri("sip:"+target, &uri); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.OPTIONS, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "t", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", "abc")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: sip.NewParams()})
	cid := sip.CallIDHeader("client-test")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.SetBody(nil)
	return req
}

func TestClient_SendsFromListeningSocketWithFreshBranch(t *testing.T) {
	f := newTestFront(t, 16447)
	p := newPeer(t, "127.0.0.1:16448", true)
	c, err := f.NewClient(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := options(t, "127.0.0.1:16448")
	var branches []string
	for i := 0; i < 2; i++ {
		res, err := c.Do(context.Background(), sipfront.OutboundRequest{Msg: req, Transport: "udp"})
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("Do: %v %v", res, err)
		}
		got := <-p.got
		if got.from != "127.0.0.1:16447" {
			t.Errorf("sent from %s, want the listening socket 127.0.0.1:16447", got.from)
		}
		via := got.msg.Via()
		if via == nil || via.Host != "127.0.0.1" || via.Port != 16447 {
			t.Errorf("Via = %v", via)
		}
		b, _ := via.Params.Get("branch")
		branches = append(branches, b)
		if n := len(got.msg.GetHeaders("Via")); n != 1 {
			t.Errorf("%d Via headers", n)
		}
	}
	if branches[0] == branches[1] || !strings.HasPrefix(branches[0], "z9hG4bK") {
		t.Errorf("branches %q: want a fresh RFC 3261 branch per request", branches)
	}
}

func TestClient_TimeoutIsSynthesized408(t *testing.T) {
	f := newTestFront(t, 16449)
	newPeer(t, "127.0.0.1:16444", false) // receives, never answers
	c, err := f.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(context.Background(), sipfront.OutboundRequest{Msg: options(t, "127.0.0.1:16444"), Transport: "udp"})
	if err != nil || res.StatusCode != 408 {
		t.Fatalf("Do = %v, %v; want a 408 response", res, err)
	}
}

func TestClient_RejectsUnsupportedTransport(t *testing.T) {
	f := newTestFront(t, 16443)
	c, _ := f.NewClient(time.Second)
	if _, err := c.Do(context.Background(), sipfront.OutboundRequest{Msg: options(t, "127.0.0.1:5060"), Transport: "ws"}); err == nil {
		t.Fatal("ws accepted")
	}
}

func TestDestination(t *testing.T) {
	for _, tt := range []struct{ in, transport, want string }{
		{"1.2.3.4", "udp", "1.2.3.4:5060"},
		{"1.2.3.4", "tls", "1.2.3.4:5061"},
		{"1.2.3.4:5080", "udp", "1.2.3.4:5080"},
		{"sip.carrier.com", "udp", "sip.carrier.com"},
		{"sip.carrier.com:5070", "tcp", "sip.carrier.com:5070"},
	} {
		if got := destination(tt.in, tt.transport); got != tt.want {
			t.Errorf("destination(%q, %s) = %q, want %q", tt.in, tt.transport, got, tt.want)
		}
	}
}
