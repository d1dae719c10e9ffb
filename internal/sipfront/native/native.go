// Package native is the SIP front built on the sipgo stack: the service owns
// its SIP sockets (SIP_LISTEN) instead of sharing a drachtio-server.
package native

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

// UDPTimerJ is how long a UDP server transaction keeps its final answer.
const UDPTimerJ = 2 * time.Second

// Options configure the front.
type Options struct {
	Listen []config.Listen
	// PublicAddress replaces unspecified listen hosts (0.0.0.0) in sbcAddress.
	PublicAddress string
	// InNetwork tells private addresses (JAMBONES_NETWORK_CIDR).
	InNetwork sipfront.Networks
	// Loop configures the serving loop (in-flight bound, request and drain
	// timeouts).
	Loop      sipfront.LoopOptions
	UserAgent string
	Log       *slog.Logger
	// TLS is the certificate of tls and wss listeners (required for them).
	TLS *Certificate
	// Limits bound stream connections and message sizes (zero values: the
	// defaults).
	Limits Limits

	// UDPSockets is how many sockets (SO_REUSEPORT, each with its own
	// reader) serve each UDP listen address; zero: one per core.
	UDPSockets int
	// UDPWorkers bounds the UDP REGISTER and OPTIONS requests handled at
	// once (zero: config.DefaultUDPWorkers); others wait for a worker, up to
	// Loop.MaxInFlight in all, and beyond it are answered 503.
	UDPWorkers int
	// UDPQueueWait is the longest such a request waits for a worker; one
	// that waited longer is dropped unanswered (zero: config.DefaultUDPQueueWait).
	UDPQueueWait time.Duration

	// maxAnswers bounds the answer cache (answers.go); zero: the default.
	// Tests lower it.
	maxAnswers int
	// now is the worker pool's clock (how long a request waited); nil:
	// time.Now. Tests move it.
	now func() time.Time
	// udpRoundDatagrams bounds the UDP sources one reader round remembers
	// (udp.go); zero: the default. Tests lower it.
	udpRoundDatagrams int
	// ClientTLS configures outbound TLS connections (ClientConfig); nil:
	// the system roots.
	ClientTLS *tls.Config
}

// Front is the native SIP front.
type Front struct {
	opts  Options
	ua    *sipgo.UserAgent
	srv   *sipgo.Server
	loop  *sipfront.Loop
	log   *slog.Logger
	guard *connGuard
	rlog  *logging.Throttle

	udpRounds atomic.Int64

	// The stateless UDP path (fastpath.go).
	parser                    *sip.Parser
	answers                   *answerCache
	workers                   *workerPool
	fastRegister, fastOptions bool
	// Retransmissions absorbed while handled, and answered from the cache.
	absorbed, resent atomic.Int64
	// Requests dropped after waiting too long for a worker.
	shed atomic.Int64
	// Requests of the sipgo path being handled.
	stackInFlight atomic.Int64

	mu         sync.Mutex
	udp        []net.PacketConn // what sipgo serves: one stackConn per group
	udpGroups  []*udpGroup
	stream     []streamListener
	sbcAddress string
	private    string
}

// New builds the front; Serve opens the sockets. Routed methods go to h
// through the serving loop.
func New(opts Options, h sipfront.Handler, methods []string) (*Front, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.Limits = opts.Limits.withDefaults()
	if opts.udpRoundDatagrams <= 0 {
		opts.udpRoundDatagrams = udpRoundDatagrams
	}
	// Process-wide sipgo knob: the default 1500 makes every UDP message over
	// ~1300 bytes fail and tears the transaction down (sipgo-notes).
	// Each is written only when it differs: a second front in the same
	// process (tests) must not race with the first one's readers.
	setKnob(&sip.UDPMTUSize, 65535)
	// Process-wide too: how long a UDP server transaction keeps its final answer
	// for retransmitted requests (Timer J, RFC 3261: 64*T1 = 32 s). Each kept
	// transaction costs ~4.6 KB, so at 2,000 registrations/s (4,000 REGISTERs)
	// 32 s meant ~600 MB of heap (bench/RESULTS.md). 2 s still absorbs a client's
	// first two retransmissions (0.5 s, 1.5 s after the request); a later one,
	// only sent when our answer was lost twice, is handled as a new request:
	// harmless for REGISTER and OPTIONS (Kamailio answers REGISTER statelessly).
	setKnob(&sip.Timer_J, UDPTimerJ)
	// Process-wide as well: the WebSocket frame limit follows it.
	setKnob(&sip.ParseMaxMessageLength, opts.Limits.MaxMessageSize)

	parser := sipmsg.NewParser()
	parser.MaxMessageLength = opts.Limits.MaxMessageSize
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(opts.UserAgent),
		sipgo.WithUserAgentParser(parser),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(stackLogger(opts.Log)),
			// Outbound requests to a carrier name without port go by SRV
			// first, then A (RFC 3263, as drachtio does for the original).
			sip.WithTransportLayerDNSLookupSRV(true),
			sip.WithTransportLayerReadFilter(udpReadFilter)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(stackLogger(opts.Log))),
	}
	if opts.ClientTLS != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(opts.ClientTLS))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("native: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(stackLogger(opts.Log)))
	if err != nil {
		return nil, fmt.Errorf("native: server: %w", err)
	}
	f := &Front{opts: opts, ua: ua, srv: srv, loop: sipfront.NewLoop(h, opts.Log, opts.Loop), log: opts.Log, parser: parser}
	f.rlog = logging.NewThrottle(opts.Log, 10*time.Second)
	f.guard = newConnGuard(opts.Limits, f.rlog)
	f.answers = newAnswerCache(opts.maxAnswers, answerPeriod)
	f.workers = newWorkerPool(opts.poolBounds(), f.serveFast, f.refuseFast, f.dropFast)
	if opts.now != nil {
		f.workers.now = opts.now
	}
	for _, m := range methods {
		m = strings.ToUpper(m)
		srv.OnRequest(sip.RequestMethod(m), f.serve)
		switch m {
		case "REGISTER":
			f.fastRegister = true
		case "OPTIONS":
			f.fastOptions = true
		}
	}
	return f, nil
}

// poolBounds are the fast path's worker pool bounds: UDPWorkers handlers
// and a queue of the rest of the in-flight bound.
func (o Options) poolBounds() poolBounds {
	total := o.Loop.MaxInFlight
	if total <= 0 {
		total = sipfront.DefaultMaxInFlight
	}
	b := poolBounds{workers: o.UDPWorkers, maxWait: o.UDPQueueWait}
	if b.workers <= 0 {
		b.workers = config.DefaultUDPWorkers
	}
	b.workers = min(b.workers, total)
	b.queue = total - b.workers
	if b.maxWait <= 0 {
		b.maxWait = config.DefaultUDPQueueWait
	}
	return b
}

func setKnob[T comparable](knob *T, v T) {
	if *knob != v {
		*knob = v
	}
}

// Listen opens every socket of Options.Listen. After it returns the actual
// addresses (port 0 resolved) are known.
func (f *Front) Listen(ctx context.Context) error {
	if n, ok := fdCap(); ok && n < f.guard.limits.MaxConnections {
		f.log.Warn("sip: open files limit lowers the connection cap", "configured", f.guard.limits.MaxConnections, "cap", n)
		f.guard.limits.MaxConnections = n
	}
	var lc net.ListenConfig
	for _, l := range f.opts.Listen {
		addr := net.JoinHostPort(l.Host, fmt.Sprint(l.Port))
		switch l.Transport {
		case "udp":
			socks, err := listenUDP(ctx, addr, f.udpSockets())
			if err != nil {
				f.Close()
				return fmt.Errorf("native: listen %s: %w", l, err)
			}
			g := &udpGroup{socks: socks, stack: newStackConn(socks[0])}
			f.mu.Lock()
			f.udpGroups = append(f.udpGroups, g)
			f.udp = append(f.udp, g.stack)
			f.mu.Unlock()
		case "tcp", "tls", "ws", "wss":
			if (l.Transport == "tls" || l.Transport == "wss") && f.opts.TLS == nil {
				f.Close()
				return fmt.Errorf("native: listen %s: no TLS certificate (SIP_TLS_CERT_FILE, SIP_TLS_KEY_FILE)", l)
			}
			raw, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				f.Close()
				return fmt.Errorf("native: listen %s: %w", l, err)
			}
			// Below TLS: the handshake is timed and capped like the rest.
			var ln net.Listener = newGuardListener(raw, f.guard, l.Transport)
			if l.Transport == "tls" || l.Transport == "wss" {
				ln = tls.NewListener(ln, f.opts.TLS.ServerConfig())
			}
			f.mu.Lock()
			f.stream = append(f.stream, streamListener{transport: l.Transport, Listener: ln})
			f.mu.Unlock()
		default:
			f.Close()
			return fmt.Errorf("native: transport %s is not supported by the native front", l.Transport)
		}
	}
	f.mu.Lock()
	f.sbcAddress, f.private = f.addresses()
	f.mu.Unlock()
	return nil
}

// Serve serves the opened sockets until ctx ends.
func (f *Front) Serve(ctx context.Context) error {
	f.mu.Lock()
	groups, stream := f.udpGroups, f.stream
	f.mu.Unlock()
	if len(groups)+len(stream) == 0 {
		return errors.New("native: Serve called before Listen")
	}
	readers := 0
	for _, g := range groups {
		readers += 1 + len(g.socks)
	}
	errc := make(chan error, readers+len(stream))
	for _, g := range groups {
		go func() { errc <- f.serveUDP(g.stack) }()
		for _, s := range g.socks {
			go func() { errc <- f.readUDP(g, s) }()
		}
	}
	for _, ln := range stream {
		go func() { errc <- f.serveStream(ln) }()
	}
	lim := f.guard.limits
	f.log.Info("sip: native front listening", "sbc_address", f.SBCAddress(), "private_sbc_address", f.PrivateSBCAddress(),
		"max_connections", lim.MaxConnections, "max_connections_per_ip", lim.MaxConnectionsPerIP,
		"handshake_timeout_ms", lim.HandshakeTimeout.Milliseconds(), "idle_timeout_s", int(lim.IdleTimeout.Seconds()),
		"max_message_size", lim.MaxMessageSize)
	select {
	case <-ctx.Done():
		f.drain()
		f.Close()
		return nil
	case err := <-errc:
		f.Close()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("native: listener stopped: %w", err)
	}
}

// drain stops accepting work and waits (bounded) for in-flight requests:
// stream listeners close at once; UDP sockets stay open to carry the
// pending answers while the loop refuses new requests with 503.
func (f *Front) drain() {
	f.mu.Lock()
	for _, ln := range f.stream {
		ln.Close()
	}
	f.mu.Unlock()
	f.loop.Drain(context.Background())
}

// InFlight returns how many requests are being handled or waiting for a
// worker. A stateless-path request counts until its worker is free for the
// next one (not only while the loop handles it): at zero, every worker is.
func (f *Front) InFlight() int64 { return f.stackInFlight.Load() + int64(f.workers.held()) }

// Close closes the sockets and the stack.
func (f *Front) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.udpGroups {
		g.close()
	}
	for _, ln := range f.stream {
		ln.Close()
	}
	f.udp, f.udpGroups, f.stream = nil, nil, nil
	f.ua.Close()
}

// SBCAddress is this SBC's hostport list (drachtio format).
func (f *Front) SBCAddress() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sbcAddress
}

// PrivateSBCAddress is the private TCP ip:port, "" when none.
func (f *Front) PrivateSBCAddress() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.private
}

// LocalAddrs returns the bound addresses as transport/ip:port.
func (f *Front) LocalAddrs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, pc := range f.udp {
		out = append(out, "udp/"+pc.LocalAddr().String())
	}
	for _, ln := range f.stream {
		out = append(out, ln.transport+"/"+ln.Addr().String())
	}
	return out
}

// addresses builds sbcAddress and the private TCP address from the bound
// sockets; f.mu is held.
func (f *Front) addresses() (string, string) {
	type bound struct {
		transport string
		addr      netip.AddrPort
	}
	var all []bound
	for _, pc := range f.udp {
		all = append(all, bound{"udp", addrPort(pc.LocalAddr())})
	}
	for _, ln := range f.stream {
		all = append(all, bound{ln.transport, addrPort(ln.Addr())})
	}
	var parts []sipfront.Hostport
	private := ""
	for _, b := range all {
		ip := b.addr.Addr()
		if ip.IsUnspecified() {
			ip = f.hostAddress()
		}
		parts = append(parts, sipfront.Hostport{Transport: b.transport, Host: ip.String(), Port: int(b.addr.Port())})
		if b.transport == "tcp" && private == "" {
			if f.opts.InNetwork.Contains(b.addr.Addr()) {
				private = b.addr.String()
			} else if b.addr.Addr().IsUnspecified() {
				if p, ok := privateInterface(f.opts.InNetwork.Contains); ok {
					private = netip.AddrPortFrom(p, b.addr.Port()).String()
				}
			}
		}
	}
	return sipfront.JoinHostports(parts), private
}

// hostAddress is the address advertised for sockets bound to 0.0.0.0.
func (f *Front) hostAddress() netip.Addr {
	if a, err := netip.ParseAddr(f.opts.PublicAddress); err == nil {
		return a
	}
	if a, ok := firstInterface(func(a netip.Addr) bool { return !a.IsLoopback() && a.Is4() }); ok {
		return a
	}
	return netip.MustParseAddr("127.0.0.1")
}

func privateInterface(in func(netip.Addr) bool) (netip.Addr, bool) {
	return firstInterface(func(a netip.Addr) bool { return a.Is4() && in(a) })
}

func firstInterface(match func(netip.Addr) bool) (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && match(p.Addr()) {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

func addrPort(a net.Addr) netip.AddrPort {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// serve translates a sipgo request for the serving loop.
func (f *Front) serve(req *sip.Request, tx sip.ServerTransaction) {
	f.stackInFlight.Add(1)
	defer f.stackInFlight.Add(-1)
	w := &responder{req: req, tx: tx, conn: f.streamConn(req, tx)}
	if w.conn != nil {
		w.conn.active()
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		f.log.Warn("sip: request with unparseable source", "source", req.Source())
		_ = w.Respond(context.Background(), &sipfront.Response{Code: 400})
		return
	}
	f.loop.ServeSIP(context.Background(), w, &sipfront.Request{
		Msg:               req,
		Source:            netip.AddrPortFrom(src.Addr().Unmap(), src.Port()),
		Transport:         strings.ToLower(req.Transport()),
		SBCAddress:        f.SBCAddress(),
		PrivateSBCAddress: f.PrivateSBCAddress(),
	})
}

// streamConn is the guarded connection req came in on; nil over UDP.
func (f *Front) streamConn(req *sip.Request, tx sip.ServerTransaction) *guardConn {
	if req.Transport() == "UDP" {
		return nil
	}
	st, ok := tx.(*sip.ServerTx)
	if !ok {
		return nil
	}
	c := st.Connection()
	if c == nil {
		return nil
	}
	return f.guard.lookup(c.LocalAddr().String(), req.Source())
}

// StreamConnections is the number of open TCP/TLS/WS/WSS connections.
func (f *Front) StreamConnections() int { return f.guard.open() }

// responder answers through the sipgo server transaction; the loop sees
// that it answers once.
type responder struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	conn *guardConn // stream connection of the request, nil over UDP
}

func (w *responder) Respond(_ context.Context, r *sipfront.Response) error {
	if r.Code == sipfront.NoAnswer {
		return nil
	}
	if err := w.tx.Respond(sipmsg.BuildResponse(w.req, r)); err != nil {
		return fmt.Errorf("native: respond %d: %w", r.Code, err)
	}
	if w.conn != nil && r.Code == 200 && w.req.Method == sip.REGISTER {
		// The connection now carries the binding: keep it while it lasts.
		w.conn.bound(grantedExpires(r.Headers))
	}
	return nil
}

// CloseConn closes the stream connection the request came in on.
func (w *responder) CloseConn() error {
	if w.conn == nil {
		return nil
	}
	return w.conn.Close()
}

// grantedExpires reads the lifetime a REGISTER 200 granted: the Expires
// header, else the largest Contact expires parameter, else RFC 3261's
// default of 3600 s.
func grantedExpires(hs []sipfront.Header) time.Duration {
	best, found := 0, false
	for _, h := range hs {
		switch strings.ToLower(h.Name) {
		case "expires":
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value)); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
		case "contact", "m":
			if m := contactExpiresRE.FindStringSubmatch(h.Value); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil {
					best, found = max(best, n), true
				}
			}
		}
	}
	if !found {
		best = 3600
	}
	return time.Duration(best) * time.Second
}

var contactExpiresRE = regexp.MustCompile(`(?i);\s*expires\s*=\s*(\d{1,9})`)

// streamListener is a connection-oriented listener and its SIP transport.
type streamListener struct {
	transport string // tcp, tls, ws, wss
	net.Listener
}

// serveStream hands a listener to the sipgo transport of its kind. The
// stack keeps each accepted connection in its pool, keyed by the peer's
// address, until the peer closes it (no idle timeout), so requests towards a
// client registered over TCP/TLS/WS/WSS reuse the connection it registered
// on, as NAT traversal requires.
func (f *Front) serveStream(ln streamListener) error {
	switch ln.transport {
	case "tls":
		return f.srv.ServeTLS(ln.Listener)
	case "ws":
		return f.srv.ServeWS(ln.Listener)
	case "wss":
		return f.srv.ServeWSS(ln.Listener)
	}
	return f.srv.ServeTCP(ln.Listener)
}

// ReloadTLS re-reads the TLS certificate (SIGHUP).
func (f *Front) ReloadTLS() error { return f.opts.TLS.Reload() }

// Listening reports whether the SIP sockets are open (readiness).
func (f *Front) Listening() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.udp)+len(f.stream) > 0 && !f.loop.Draining()
}

// HasConnection reports whether the stack holds an open connection of the
// transport (tcp, tls, ws, wss) to addr (ip:port), which requests to that
// peer will reuse.
func (f *Front) HasConnection(transport, addr string) bool {
	c, err := f.ua.TransportLayer().GetConnection(transport, addr)
	return err == nil && c != nil
}
