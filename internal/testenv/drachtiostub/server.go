// Package drachtiostub is a drachtio-server stand-in for tests: it speaks the
// server side of the drachtio control protocol (docs/drachtio-protocol.md)
// on a TCP port and bridges it to real SIP over UDP and TCP on loopback, so
// sipp scenarios run end to end through the drachtio front.
//
// It implements what a REGISTER/OPTIONS application meets: authenticate
// (hostports, version, local hostports; NO + close on a bad secret), route
// with round robin per verb, remove_route (with the server's remove-all
// bug), ping/pong, answers to incoming requests (exactly one, 64 s window,
// NOK for unknown transactions), new requests with echo, responses matched
// by transaction, 408 on timeout and 503 on transport failure.
package drachtiostub

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Listen is one SIP listening point.
type Listen struct {
	Transport string // udp or tcp
	Addr      string // ip:port
}

// Options configure the stand-in.
type Options struct {
	Control string // ip:port of the control port
	Secret  string
	// TLS, when set, serves the control port over TLS (drachtio's tls-port).
	TLS *tls.Config
	SIP []Listen
	// ExternalIP, when set, is reported in hostports instead of the bound IP.
	ExternalIP string
	Version    string // default v0.9.10
	// WriteChunk > 0 writes every frame in pieces of that many bytes, so
	// the client sees frames split across reads.
	WriteChunk int
	// TxnTimeout ends unanswered outbound transactions with 408 (default 32s).
	TxnTimeout time.Duration
	// AnswerWindow is how long an incoming request waits for its answer
	// (default 64s, as the server).
	AnswerWindow time.Duration
	Log          *slog.Logger
}

// Server is a running stand-in.
type Server struct {
	opts Options
	log  *slog.Logger

	mu         sync.Mutex
	ln         net.Listener
	clients    map[*client]struct{}
	routes     map[string][]*client
	rr         map[string]int
	inbound    map[string]*serverTxn // by transaction id
	byBranch   map[string]*serverTxn // incoming request by source+branch
	outbound   map[string]*clientTxn // by Via branch
	violations []string
	noPong     bool
	sent       []string
	answered   int

	udp    []*net.UDPConn
	tcp    []net.Listener
	closed chan struct{}
	wg     sync.WaitGroup
}

type client struct {
	nc  net.Conn
	wmu sync.Mutex
}

type serverTxn struct {
	id       string
	req      *sip.Request
	reply    func([]byte) error
	proto    string
	src      peer
	created  time.Time
	answered []byte
}

type peer struct {
	ip   string
	port int
}

type clientTxn struct {
	id     string
	owner  *client
	req    *sip.Request
	timer  *time.Timer
	proto  string
	stream net.Conn
}

// Start runs the stand-in until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts the stand-in; Close stops it.
func New(opts Options) (*Server, error) {
	if opts.Version == "" {
		opts.Version = "v0.9.10"
	}
	if opts.TxnTimeout <= 0 {
		opts.TxnTimeout = 32 * time.Second
	}
	if opts.AnswerWindow <= 0 {
		opts.AnswerWindow = 64 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Log.With("component", "drachtiostub"),
		clients: map[*client]struct{}{}, routes: map[string][]*client{}, rr: map[string]int{},
		inbound: map[string]*serverTxn{}, byBranch: map[string]*serverTxn{}, outbound: map[string]*clientTxn{},
		closed: make(chan struct{})}
	for _, l := range opts.SIP {
		switch l.Transport {
		case "udp":
			a, err := net.ResolveUDPAddr("udp", l.Addr)
			if err != nil {
				s.Close()
				return nil, err
			}
			pc, err := net.ListenUDP("udp", a)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("drachtiostub: %w", err)
			}
			s.udp = append(s.udp, pc)
			s.wg.Add(1)
			go s.serveUDP(pc)
		case "tcp":
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("drachtiostub: %w", err)
			}
			s.tcp = append(s.tcp, ln)
			s.wg.Add(1)
			go s.serveTCP(ln)
		default:
			s.Close()
			return nil, fmt.Errorf("drachtiostub: transport %q not supported", l.Transport)
		}
	}
	if err := s.StartControl(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// StartControl (re)opens the control port.
func (s *Server) StartControl() error {
	ln, err := net.Listen("tcp", s.opts.Control)
	if err != nil {
		return fmt.Errorf("drachtiostub: control: %w", err)
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptControl(ln)
	return nil
}

// StopControl closes the control port and every client connection, as if
// drachtio-server had died; the SIP sockets stay open (the kernel would
// refuse them, sipp just sees no answers).
func (s *Server) StopControl() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	cs := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range cs {
		c.nc.Close()
	}
}

// Close stops everything.
func (s *Server) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	s.StopControl()
	s.mu.Lock()
	for _, t := range s.outbound {
		t.timer.Stop()
	}
	s.mu.Unlock()
	for _, pc := range s.udp {
		pc.Close()
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
	s.wg.Wait()
}

// SetPong turns pong answers on or off (off: pings are swallowed).
func (s *Server) SetPong(on bool) {
	s.mu.Lock()
	s.noPong = !on
	s.mu.Unlock()
}

// SetExternalIP changes the external IP reported from the next
// authenticate on (as after drachtio-server restarts with a new external-ip).
func (s *Server) SetExternalIP(ip string) {
	s.mu.Lock()
	s.opts.ExternalIP = ip
	s.mu.Unlock()
}

func (s *Server) externalIP() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.ExternalIP
}

// Answered is how many incoming requests clients answered.
func (s *Server) Answered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

// Sent returns the requests clients sent through the stand-in, as sent.
func (s *Server) Sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// Clients is the number of connected control clients.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// Routed is the number of (client, verb) registrations for verb.
func (s *Server) Routed(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.routes[verb])
}

// Violations lists protocol errors clients made.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Hostports is what authenticate answers: external IP when configured.
func (s *Server) Hostports() string { return s.hostports(true) }

// LocalHostports lists the bound addresses.
func (s *Server) LocalHostports() string { return s.hostports(false) }

func (s *Server) hostports(external bool) string {
	var parts []string
	for _, pc := range s.udp {
		parts = append(parts, s.hp("udp", pc.LocalAddr(), external))
	}
	for _, ln := range s.tcp {
		parts = append(parts, s.hp("tcp", ln.Addr(), external))
	}
	return strings.Join(parts, ",")
}

func (s *Server) hp(proto string, a net.Addr, external bool) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ext := s.externalIP(); external && ext != "" {
		host = ext
	}
	return proto + "/" + net.JoinHostPort(host, port)
}

func (s *Server) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Error("drachtiostub: client protocol violation", "detail", msg)
	s.mu.Lock()
	s.violations = append(s.violations, msg)
	s.mu.Unlock()
}

func newID() string { return strings.ToLower(rand.Text()) }

func stackTime() string { return time.Now().UTC().Format("15:04:05.000000") }

// --- control side ---

func (s *Server) acceptControl(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := &client{nc: nc}
		s.mu.Lock()
		s.clients[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveClient(c)
	}
}

func (s *Server) dropClient(c *client) {
	c.nc.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, c)
	for verb, cs := range s.routes {
		kept := cs[:0]
		for _, x := range cs {
			if x != c {
				kept = append(kept, x)
			}
		}
		s.routes[verb] = kept
	}
	for b, t := range s.outbound {
		if t.owner == c {
			t.timer.Stop()
			delete(s.outbound, b)
		}
	}
}

// write sends one frame to c, optionally in small pieces.
func (s *Server) write(c *client, payload string) {
	data := frame(payload)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if n := s.opts.WriteChunk; n > 0 {
		for len(data) > 0 {
			k := min(n, len(data))
			if _, err := c.nc.Write(data[:k]); err != nil {
				return
			}
			data = data[k:]
		}
		return
	}
	_, _ = c.nc.Write(data)
}

func (s *Server) respond(c *client, id string, fields ...string) string {
	sid := newID()
	return strings.Join(append([]string{sid, "response", id}, fields...), "|")
}

func (s *Server) serveClient(c *client) {
	defer s.wg.Done()
	defer s.dropClient(c)
	r := bufio.NewReaderSize(c.nc, 8192)
	for {
		payload, err := readFrame(r)
		if err != nil {
			if errors.Is(err, errProtocol) {
				s.violation("%v", err)
			}
			return
		}
		fields, sipText := split(payload)
		if len(fields) < 2 {
			s.write(c, s.respond(c, fields[0], "NO", "Invalid message format"))
			return
		}
		id := fields[0]
		switch fields[1] {
		case "authenticate":
			if len(fields) < 3 || fields[2] != s.opts.Secret {
				s.write(c, s.respond(c, id, "NO", "incorrect secret"))
				return
			}
			s.write(c, s.respond(c, id, "OK", s.Hostports(), s.opts.Version, s.LocalHostports()))
		case "route":
			verb := ""
			if len(fields) > 2 {
				verb = fields[2]
			}
			s.mu.Lock()
			s.routes[verb] = append(s.routes[verb], c)
			s.mu.Unlock()
			s.write(c, s.respond(c, id, "OK"))
		case "remove_route":
			// The server read removes all of the client's routes.
			s.mu.Lock()
			for verb, cs := range s.routes {
				kept := cs[:0]
				for _, x := range cs {
					if x != c {
						kept = append(kept, x)
					}
				}
				s.routes[verb] = kept
			}
			s.mu.Unlock()
			s.write(c, s.respond(c, id, "OK"))
		case "ping":
			s.mu.Lock()
			silent := s.noPong
			s.mu.Unlock()
			if !silent {
				s.write(c, s.respond(c, id, "OK", "pong"))
			}
		case "sip":
			if len(fields) < 4 {
				// The real server aborts on an assertion here.
				s.violation("sip command with %d leader fields: %q", len(fields), payload[:min(len(payload), 80)])
				return
			}
			if fields[2] != "" {
				s.answerIncoming(c, id, fields[2], sipText)
			} else {
				proxy := ""
				if len(fields) > 4 {
					proxy = fields[4]
				}
				s.sendRequest(c, id, proxy, sipText)
			}
		default:
			s.write(c, s.respond(c, id, "NO", "Unknown message type"))
			return
		}
	}
}
