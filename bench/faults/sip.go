package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
)

// response is what the driver needs of a SIP answer.
type response struct {
	code      int
	challenge string // WWW-Authenticate
	at        time.Time
}

// pending is one sent request waiting for its final answer.
type pending struct {
	sent time.Time
	ch   chan response // nil: only the latency is recorded (load)
	done func(r response)
}

// phoneSocket sends REGISTERs from one UDP socket and routes final answers
// by Call-ID.
type phoneSocket struct {
	conn   *net.UDPConn
	target *net.UDPAddr
	local  string
	seq    atomic.Int64

	mu      sync.Mutex
	pending map[string]*pending
}

func newPhoneSocket(target string) (*phoneSocket, error) {
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetWriteBuffer(8 << 20)
	s := &phoneSocket{conn: conn, target: raddr, local: conn.LocalAddr().String(), pending: map[string]*pending{}}
	go s.read()
	return s, nil
}

func (s *phoneSocket) close() { s.conn.Close() }

func (s *phoneSocket) read() {
	buf := make([]byte, 65536)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		code, callID, challenge, ok := parseResponse(string(buf[:n]))
		if !ok || code < 200 {
			continue
		}
		s.mu.Lock()
		p := s.pending[callID]
		delete(s.pending, callID)
		s.mu.Unlock()
		if p == nil {
			continue
		}
		r := response{code: code, challenge: challenge, at: now}
		if p.done != nil {
			p.done(r)
		}
		if p.ch != nil {
			p.ch <- r
		}
	}
}

func parseResponse(msg string) (code int, callID, challenge string, ok bool) {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	f := strings.Fields(lines[0])
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0, "", "", false
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, "", "", false
	}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			callID = strings.TrimSpace(value)
		case "www-authenticate":
			if challenge == "" {
				challenge = strings.TrimSpace(value)
			}
		}
	}
	return code, callID, challenge, callID != ""
}

// register builds a REGISTER of user@domain from this socket.
func (s *phoneSocket) register(user, domain, callID string, cseq int, authorization string) string {
	n := s.seq.Add(1)
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", domain)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-f%d;rport\r\n", s.local, n)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%d\r\n", user, domain, n)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", user, domain)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", user, s.local)
	fmt.Fprintf(&b, "Expires: %d\r\n", expires)
	if authorization != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", authorization)
	}
	b.WriteString("User-Agent: bench-faults\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// send sends msg and records its answer with done (asynchronous).
func (s *phoneSocket) send(callID, msg string, done func(sent time.Time, r response)) {
	p := &pending{sent: time.Now()}
	p.done = func(r response) { done(p.sent, r) }
	s.mu.Lock()
	s.pending[callID] = p
	s.mu.Unlock()
	_, _ = s.conn.WriteToUDP([]byte(msg), s.target)
}

// forget drops requests still unanswered and returns when they were sent.
func (s *phoneSocket) forget() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sent []time.Time
	for _, p := range s.pending {
		sent = append(sent, p.sent)
	}
	s.pending = map[string]*pending{}
	return sent
}

// request sends msg and waits for its final answer.
func (s *phoneSocket) request(ctx context.Context, callID, msg string) (response, error) {
	p := &pending{sent: time.Now(), ch: make(chan response, 1)}
	s.mu.Lock()
	s.pending[callID] = p
	s.mu.Unlock()
	if _, err := s.conn.WriteToUDP([]byte(msg), s.target); err != nil {
		return response{}, err
	}
	select {
	case r := <-p.ch:
		return r, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, callID)
		s.mu.Unlock()
		return response{}, ctx.Err()
	}
}

var callSeq atomic.Int64

func newCallID(kind string) string {
	return fmt.Sprintf("%s-%d-%d@bench", kind, time.Now().UnixNano(), callSeq.Add(1))
}

// fullRegister runs REGISTER, 401, REGISTER with credentials for
// user@domain and returns the final status.
func (s *phoneSocket) fullRegister(ctx context.Context, user, domain string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	callID := newCallID("reg")
	r, err := s.request(ctx, callID, s.register(user, domain, callID, 1, ""))
	if err != nil || r.code != 401 {
		return r.code, err
	}
	ch, err := digest.ParseChallenge(r.challenge)
	if err != nil {
		return 0, err
	}
	auth, err := ch.Authorize("REGISTER", "sip:"+domain, user, password, 1)
	if err != nil {
		return 0, err
	}
	r, err = s.request(ctx, callID, s.register(user, domain, callID, 2, auth))
	return r.code, err
}
