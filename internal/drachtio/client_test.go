package drachtio_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/drachtio"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
)

// sessions collects OnSession calls.
type sessions struct {
	mu  sync.Mutex
	got []drachtio.Session
	ch  chan drachtio.Session
}

func newSessions() *sessions { return &sessions{ch: make(chan drachtio.Session, 16)} }

func (s *sessions) add(x drachtio.Session) {
	s.mu.Lock()
	s.got = append(s.got, x)
	s.mu.Unlock()
	s.ch <- x
}

func (s *sessions) wait(t *testing.T) drachtio.Session {
	t.Helper()
	select {
	case x := <-s.ch:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no session")
	}
	return drachtio.Session{}
}

func run(t *testing.T, opts drachtio.Options) *drachtio.Client {
	t.Helper()
	c := drachtio.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func TestClient_AuthenticatesAndRoutes(t *testing.T) {
	stub := drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19610", Secret: "cymru",
		SIP: []drachtiostub.Listen{{Transport: "udp", Addr: "127.0.0.1:16630"}}, ExternalIP: "203.0.113.10", WriteChunk: 3})
	ss := newSessions()
	run(t, drachtio.Options{Addr: "127.0.0.1:19610", Secret: "cymru", Routes: []string{"REGISTER", "options"}, OnSession: ss.add})
	s := ss.wait(t)
	if s.Hostports != "udp/203.0.113.10:16630" || s.LocalHostports != "udp/127.0.0.1:16630" || s.Version != "v0.9.10" {
		t.Fatalf("session = %+v", s)
	}
	if stub.Routed("register") != 1 || stub.Routed("options") != 1 || stub.Routed("REGISTER") != 0 {
		t.Fatalf("routes: register=%d options=%d", stub.Routed("register"), stub.Routed("options"))
	}
}

func TestClient_ReconnectsAfterPeerCloses(t *testing.T) {
	stub := drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19611", Secret: "s",
		SIP: []drachtiostub.Listen{{Transport: "udp", Addr: "127.0.0.1:16631"}}})
	ss := newSessions()
	c := run(t, drachtio.Options{Addr: "127.0.0.1:19611", Secret: "s", Routes: []string{"register"},
		OnSession: ss.add, BackoffInitial: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	ss.wait(t)
	stub.StopControl()
	// Commands fail while the peer is away...
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := c.Session(); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client did not notice the closed connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Command(context.Background(), []string{"ping"}, ""); !errors.Is(err, drachtio.ErrNotConnected) {
		t.Fatalf("command while disconnected: %v", err)
	}
	// ... and the client comes back by itself, routes included.
	if err := stub.StartControl(); err != nil {
		t.Fatal(err)
	}
	ss.wait(t)
	if stub.Routed("register") != 1 {
		t.Fatalf("register routed %d times after reconnect", stub.Routed("register"))
	}
	if _, err := c.Command(context.Background(), []string{"ping"}, ""); err != nil {
		t.Fatalf("ping after reconnect: %v", err)
	}
}

func TestClient_FirstConnectRetriesUntilServerAppears(t *testing.T) {
	ss := newSessions()
	run(t, drachtio.Options{Addr: "127.0.0.1:19612", Secret: "s", OnSession: ss.add,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	time.Sleep(50 * time.Millisecond) // a few refused attempts
	drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19612", Secret: "s"})
	ss.wait(t)
}

func TestClient_MissedPongsCloseTheConnection(t *testing.T) {
	stub := drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19613", Secret: "s"})
	stub.SetPong(false)
	ss := newSessions()
	run(t, drachtio.Options{Addr: "127.0.0.1:19613", Secret: "s", OnSession: ss.add,
		PingInterval: 30 * time.Millisecond, MaxMissedPongs: 2, BackoffInitial: 10 * time.Millisecond})
	ss.wait(t)
	ss.wait(t) // a second session: the first was declared dead
	stub.SetPong(true)
}

func TestClient_BadSecretKeepsRetrying(t *testing.T) {
	drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19614", Secret: "right"})
	ss := newSessions()
	c := run(t, drachtio.Options{Addr: "127.0.0.1:19614", Secret: "wrong", OnSession: ss.add,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	time.Sleep(200 * time.Millisecond)
	if _, ok := c.Session(); ok || len(ss.ch) != 0 {
		t.Fatal("session with a wrong secret")
	}
}

// A raw peer sending frames a client must tolerate: unknown types, cdrs,
// responses for unknown ids, short sip frames, unparsable SIP.
func TestClient_ToleratesUnknownFrames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:19615")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		fr := drachtio.NewFrameReader(r, 0, 0)
		send := func(p string) { _, _ = nc.Write(drachtio.AppendFrame(nil, p)) }
		for {
			p, err := fr.Next()
			if err != nil {
				return
			}
			m := drachtio.ParseMessage(p)
			switch m.Type() {
			case "authenticate":
				send("s-0|cdr:start|network|14:00:00.000000|uac\r\nINVITE sip:x SIP/2.0\r\n\r\n")
				send("s-1|whatever|a|b")
				send("s-2|response|nobody|OK")
				send("s-3|sip|network|12")
				send("s-4|sip|network|0|udp|1.2.3.4|5060|t|txn-x||\r\nSIP/2.0 200 OK\r\n\r\n")
				send("s-5|response|" + m.ID() + "|OK|udp/127.0.0.1:5060|v0.9.10|udp/127.0.0.1:5060")
			case "route":
				send("s-6|sip|network|10|udp|1.2.3.4|5060|t|txn-1||127.0.0.1|5060|\r\nNOT SIP AT ALL\r\n\r\n")
				send("s-7|response|" + m.ID() + "|OK")
			case "ping":
				send("s-8|response|" + m.ID() + "|OK|pong")
			}
		}
	}()
	ss := newSessions()
	var reqs []string
	var mu sync.Mutex
	c := run(t, drachtio.Options{Addr: "127.0.0.1:19615", Secret: "s", Routes: []string{"register"}, OnSession: ss.add,
		OnRequest: func(m drachtio.Message) { mu.Lock(); reqs = append(reqs, m.Field(8)); mu.Unlock() }})
	ss.wait(t)
	if _, err := c.Command(context.Background(), []string{"ping"}, ""); err != nil {
		t.Fatalf("ping after odd frames: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(reqs, ",") != "txn-1" {
		t.Fatalf("requests handed on: %v", reqs)
	}
}

func TestClient_RefusesOversizedFrames(t *testing.T) {
	drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19616", Secret: "s"})
	ss := newSessions()
	c := run(t, drachtio.Options{Addr: "127.0.0.1:19616", Secret: "s", OnSession: ss.add})
	ss.wait(t)
	_, err := c.Command(context.Background(), []string{"sip", "txn", ""}, strings.Repeat("x", 13000))
	if !errors.Is(err, drachtio.ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Command(context.Background(), []string{"sip", "txn", ""}, "SIP/2.0 200 OK\r\n\r\n")
	var rej *drachtio.RejectedError
	if !errors.As(err, &rej) || rej.Status != "NOK" {
		t.Fatalf("answer to an unknown transaction: %v", err)
	}
}
