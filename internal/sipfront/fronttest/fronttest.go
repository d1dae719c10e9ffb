// Package fronttest is the conformance suite every SIP front must pass: the
// same checks run against the native front and the drachtio front, so the
// handlers behave alike whichever front delivers the request, and each front
// really goes through the serving loop (strictness, admission, panic
// recovery, exactly one answer).
package fronttest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Target is a started front as the suite sees it.
type Target struct {
	// UDP is where the front takes SIP over UDP (host:port).
	UDP string
	// SBCAddress and PrivateSBCAddress are what requests must carry.
	SBCAddress, PrivateSBCAddress string
	// InFlight is the front's count of requests being served.
	InFlight func() int64
}

// Start starts a front serving h through a loop configured with o until
// the test ends.
type Start func(t *testing.T, h sipfront.Handler, o sipfront.LoopOptions) Target

// maxInFlight is the in-flight bound the suite starts fronts with.
const maxInFlight = 2

// switchHandler lets one started front serve every case of the suite.
type switchHandler struct {
	mu sync.Mutex
	h  sipfront.Handler
}

func (s *switchHandler) set(h sipfront.HandlerFunc) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func (s *switchHandler) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeSIP(ctx, w, r)
}

// Run runs the suite against the front start starts. localIP is the
// loopback address the suite's UDP client binds to.
func Run(t *testing.T, start Start, localIP string) {
	sw := &switchHandler{h: sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	})}
	target := start(t, sw, sipfront.LoopOptions{MaxInFlight: maxInFlight})
	// Every case starts with every slot free. A front writes the answer
	// before the loop frees the request's slot, so a client that got its
	// answer can send the next request before the slot is free; with the
	// suite's two slots, two such tails (workers descheduled after their
	// write, as under -race on a busy machine) answered a case 503.
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			waitIdle(t, target)
			f(t)
		})
	}

	run("RequestCarriesSourceTransportAndSBCAddresses", func(t *testing.T) {
		got := make(chan *sipfront.Request, 1)
		sw.set(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
			got <- r
			_ = w.Respond(ctx, &sipfront.Response{Code: 200})
		})
		conn := dial(t, localIP, target.UDP)
		res := exchange(t, conn, register("props-1", target.UDP, conn.LocalAddr().String()))
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		r := <-got
		if r.Source.String() != conn.LocalAddr().String() || r.Transport != "udp" {
			t.Errorf("source %s transport %q, want %s udp", r.Source, r.Transport, conn.LocalAddr())
		}
		if r.SBCAddress != target.SBCAddress || r.PrivateSBCAddress != target.PrivateSBCAddress {
			t.Errorf("sbc addresses %q / %q, want %q / %q", r.SBCAddress, r.PrivateSBCAddress, target.SBCAddress, target.PrivateSBCAddress)
		}
		if r.Msg.Method != sip.REGISTER || r.CallID() != "props-1" || r.Header("X-Test") != "é ünïcode" {
			t.Errorf("message: %s call-id %q x-test %q", r.Msg.Method, r.CallID(), r.Header("X-Test"))
		}
	})

	run("AnswerKeepsDialogHeadersAndAddsOurs", func(t *testing.T) {
		sw.set(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
			_ = w.Respond(ctx, &sipfront.Response{Code: 403, Headers: []sipfront.Header{{Name: "X-Reason", Value: "Invalid credentials"}}})
		})
		conn := dial(t, localIP, target.UDP)
		res := exchange(t, conn, register("answer-1", target.UDP, conn.LocalAddr().String()))
		if res.StatusCode != 403 || res.Reason != "Forbidden" {
			t.Fatalf("got %d %s", res.StatusCode, res.Reason)
		}
		if h := res.GetHeader("X-Reason"); h == nil || h.Value() != "Invalid credentials" {
			t.Errorf("X-Reason = %v", h)
		}
		if res.CallID().Value() != "answer-1" || res.CSeq().SeqNo != 7 || !res.To().Params.Has("tag") {
			t.Errorf("dialog headers: %s", res)
		}
		if b, _ := res.Via().Params.Get("branch"); b != "z9hG4bK-answer-1" {
			t.Errorf("Via branch %q", b)
		}
	})

	run("NoAnswerBecomes500", func(t *testing.T) {
		sw.set(func(context.Context, sipfront.ResponseWriter, *sipfront.Request) {})
		conn := dial(t, localIP, target.UDP)
		if res := exchange(t, conn, register("none-1", target.UDP, conn.LocalAddr().String())); res.StatusCode != 500 {
			t.Fatalf("got %d, want 500", res.StatusCode)
		}
	})

	run("PanicBecomes500", func(t *testing.T) {
		sw.set(func(context.Context, sipfront.ResponseWriter, *sipfront.Request) { panic("boom") })
		conn := dial(t, localIP, target.UDP)
		if res := exchange(t, conn, register("panic-1", target.UDP, conn.LocalAddr().String())); res.StatusCode != 500 {
			t.Fatalf("got %d, want 500", res.StatusCode)
		}
	})

	run("OnlyTheFirstAnswerIsSent", func(t *testing.T) {
		second := make(chan error, 1)
		sw.set(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
			_ = w.Respond(ctx, &sipfront.Response{Code: 404})
			second <- w.Respond(ctx, &sipfront.Response{Code: 200})
		})
		conn := dial(t, localIP, target.UDP)
		if res := exchange(t, conn, register("twice-1", target.UDP, conn.LocalAddr().String())); res.StatusCode != 404 {
			t.Fatalf("got %d, want 404", res.StatusCode)
		}
		if err := <-second; err == nil {
			t.Fatal("second Respond succeeded")
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		if n, err := conn.Read(buf); err == nil {
			t.Fatalf("a second answer arrived: %q", buf[:n])
		}
	})

	run("MalformedRefusedBeforeTheHandler", func(t *testing.T) {
		called := make(chan string, 8)
		sw.set(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
			called <- r.CallID()
			_ = w.Respond(ctx, &sipfront.Response{Code: 200})
		})
		for _, tc := range []struct {
			name, id string
			edit     func(string) string
			code     int
			reason   string
		}{
			{"SIP/3.0", "strict-v3", func(s string) string { return strings.Replace(s, " SIP/2.0\r\n", " SIP/3.0\r\n", 1) }, 505, "Only SIP/2.0 is supported"},
			{"two To", "strict-to", func(s string) string { return strings.Replace(s, "CSeq:", "t: <sip:mallory@example.com>\r\nCSeq:", 1) }, 400, "Duplicate To header"},
			{"two CSeq", "strict-cseq", func(s string) string {
				return strings.Replace(s, "Max-Forwards:", "CSeq: 8 REGISTER\r\nMax-Forwards:", 1)
			}, 400, "Duplicate CSeq header"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn := dial(t, localIP, target.UDP)
				res := exchange(t, conn, tc.edit(register(tc.id, target.UDP, conn.LocalAddr().String())))
				if res.StatusCode != tc.code || res.SipVersion != "SIP/2.0" {
					t.Fatalf("got %s %d, want SIP/2.0 %d", res.SipVersion, res.StatusCode, tc.code)
				}
				if h := res.GetHeader("X-Reason"); h == nil || h.Value() != tc.reason {
					t.Errorf("X-Reason = %v, want %q", h, tc.reason)
				}
			})
		}
		select {
		case id := <-called:
			t.Fatalf("the handler saw refused request %s", id)
		default:
		}
	})

	run("OverloadAnswered503", func(t *testing.T) {
		inside, release := make(chan struct{}), make(chan struct{})
		sw.set(func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
			if strings.HasPrefix(r.CallID(), "busy-") {
				inside <- struct{}{}
				<-release
			}
			_ = w.Respond(ctx, &sipfront.Response{Code: 200})
		})
		var busy []*net.UDPConn
		for i := 0; i < maxInFlight; i++ {
			conn := dial(t, localIP, target.UDP)
			if _, err := conn.Write([]byte(register(fmt.Sprintf("busy-%d", i), target.UDP, conn.LocalAddr().String()))); err != nil {
				t.Fatal(err)
			}
			<-inside
			busy = append(busy, conn)
		}
		conn := dial(t, localIP, target.UDP)
		res := exchange(t, conn, register("overflow-1", target.UDP, conn.LocalAddr().String()))
		close(release)
		if res.StatusCode != 503 {
			t.Fatalf("got %d, want 503", res.StatusCode)
		}
		if h := res.GetHeader("Retry-After"); h == nil || h.Value() == "" {
			t.Errorf("503 without Retry-After: %s", res)
		}
		for _, c := range busy {
			if res := read(t, c); res.StatusCode != 200 {
				t.Errorf("held request answered %d, want 200", res.StatusCode)
			}
		}
		waitIdle(t, target)
	})
}

// waitIdle waits until the front has no request in flight, so that a case
// starts with every slot free.
func waitIdle(t *testing.T, target Target) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for target.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still in flight", target.InFlight())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, localIP, target string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(localIP)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func register(callID, target, local string) string {
	return strings.ReplaceAll(fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[3]s;rport;branch=z9hG4bK-%[1]s\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:alice@example.com>;tag=ft-%[1]s\r\n"+
		"To: <sip:alice@example.com>\r\n"+
		"Call-ID: %[1]s\r\n"+
		"CSeq: 7 REGISTER\r\n"+
		"Contact: <sip:alice@%[3]s>;expires=60\r\n"+
		"X-Test: é ünïcode\r\n"+
		"Content-Length: 0\r\n\r\n", callID, target, local), "\n\n", "\n")
}

func exchange(t *testing.T, conn *net.UDPConn, msg string) *sip.Response {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	return read(t, conn)
}

// read returns the next answer on conn.
func read(t *testing.T, conn *net.UDPConn) *sip.Response {
	t.Helper()
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	m, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, buf[:n])
	}
	res, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %s", buf[:n])
	}
	return res
}
