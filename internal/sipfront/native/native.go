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
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// UDPTimerJ is how long a UDP server transaction keeps its final answer.
const UDPTimerJ = 2 * time.Second

// Options configure the front.
type Options struct {
	Listen []config.Listen
	// PublicAddress replaces unspecified listen hosts (0.0.0.0) in sbcAddress.
	PublicAddress string
	// InNetwork tells private addresses (JAMBONES_NETWORK_CIDR).
	InNetwork func(netip.Addr) bool
	// MaxInFlight bounds concurrently handled requests; beyond it requests
	// are answered 503 at once.
	MaxInFlight int
	// RequestTimeout bounds one request's handling (well under Timer F).
	RequestTimeout time.Duration
	// DrainTimeout bounds how long shutdown waits for in-flight requests.
	DrainTimeout time.Duration
	UserAgent    string
	Log          *slog.Logger
	// TLS is the certificate of tls and wss listeners (required for them).
	TLS *Certificate
	// ClientTLS configures outbound TLS connections (ClientConfig); nil:
	// the system roots.
	ClientTLS *tls.Config
}

// Front is the native SIP front.
type Front struct {
	opts    Options
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	handler sipfront.Handler
	log     *slog.Logger
	slots   chan struct{}

	draining atomic.Bool
	inflight atomic.Int64

	mu         sync.Mutex
	udp        []net.PacketConn
	stream     []streamListener
	sbcAddress string
	private    string
}

// New builds the front; Serve opens the sockets. Routed methods go to h.
func New(opts Options, h sipfront.Handler, methods []string) (*Front, error) {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 2048
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.InNetwork == nil {
		opts.InNetwork = func(netip.Addr) bool { return false }
	}
	// Process-wide sipgo knob: the default 1500 makes every UDP message over
	// ~1300 bytes fail and tears the transaction down (sipgo-notes).
	sip.UDPMTUSize = 65535
	// Process-wide too: how long a UDP server transaction keeps its final answer
	// for retransmitted requests (Timer J, RFC 3261: 64*T1 = 32 s). Each kept
	// transaction costs ~4.6 KB, so at 2,000 registrations/s (4,000 REGISTERs)
	// 32 s meant ~600 MB of heap (bench/RESULTS.md). 2 s still absorbs a client's
	// first two retransmissions (0.5 s, 1.5 s after the request); a later one,
	// only sent when our answer was lost twice, is handled as a new request:
	// harmless for REGISTER and OPTIONS (Kamailio answers REGISTER statelessly).
	sip.Timer_J = UDPTimerJ

	parser := sip.NewParser(sip.WithHeadersParsers(lenientParsers()))
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(opts.UserAgent),
		sipgo.WithUserAgentParser(parser),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(stackLogger(opts.Log)),
			// Outbound requests to a carrier name without port go by SRV
			// first, then A (RFC 3263, as drachtio does for the original).
			sip.WithTransportLayerDNSLookupSRV(true)),
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
	f := &Front{opts: opts, ua: ua, srv: srv, handler: h, log: opts.Log, slots: make(chan struct{}, opts.MaxInFlight)}
	for _, m := range methods {
		srv.OnRequest(sip.RequestMethod(strings.ToUpper(m)), f.serve)
	}
	return f, nil
}

// stackLogger keeps sipgo's own logging at warnings and above: it logs whole
// raw messages at debug/error, which floods under attack.
func stackLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{Handler: l.Handler(), min: slog.LevelWarn})
}

// Listen opens every socket of Options.Listen. After it returns the actual
// addresses (port 0 resolved) are known.
func (f *Front) Listen(ctx context.Context) error {
	var lc net.ListenConfig
	for _, l := range f.opts.Listen {
		addr := net.JoinHostPort(l.Host, fmt.Sprint(l.Port))
		switch l.Transport {
		case "udp":
			pc, err := lc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				f.Close()
				return fmt.Errorf("native: listen %s: %w", l, err)
			}
			if uc, ok := pc.(*net.UDPConn); ok {
				// Bursts of REGISTERs overflow the default buffer (sipgo-notes).
				_ = uc.SetReadBuffer(4 << 20)
				_ = uc.SetWriteBuffer(4 << 20)
			}
			f.mu.Lock()
			f.udp = append(f.udp, pc)
			f.mu.Unlock()
		case "tcp", "tls", "ws", "wss":
			if (l.Transport == "tls" || l.Transport == "wss") && f.opts.TLS == nil {
				f.Close()
				return fmt.Errorf("native: listen %s: no TLS certificate (SIP_TLS_CERT_FILE, SIP_TLS_KEY_FILE)", l)
			}
			ln, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				f.Close()
				return fmt.Errorf("native: listen %s: %w", l, err)
			}
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
	udp, stream := f.udp, f.stream
	f.mu.Unlock()
	if len(udp)+len(stream) == 0 {
		return errors.New("native: Serve called before Listen")
	}
	errc := make(chan error, len(udp)+len(stream))
	for _, pc := range udp {
		go func() { errc <- f.srv.ServeUDP(pc) }()
	}
	for _, ln := range stream {
		go func() { errc <- f.serveStream(ln) }()
	}
	f.log.Info("sip: native front listening", "sbc_address", f.SBCAddress(), "private_sbc_address", f.PrivateSBCAddress())
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
// TCP listeners close at once; UDP sockets stay open to carry the pending
// answers while new requests are refused with 503.
func (f *Front) drain() {
	f.draining.Store(true)
	f.mu.Lock()
	for _, ln := range f.stream {
		ln.Close()
	}
	f.mu.Unlock()
	deadline := time.Now().Add(f.opts.DrainTimeout)
	for f.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.inflight.Load(); n > 0 {
		f.log.Warn("sip: shutting down with requests still in flight", "in_flight", n)
	} else {
		f.log.Info("sip: drained in-flight requests")
	}
}

// InFlight returns how many requests are being handled.
func (f *Front) InFlight() int64 { return f.inflight.Load() }

// Close closes the sockets and the stack.
func (f *Front) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pc := range f.udp {
		pc.Close()
	}
	for _, ln := range f.stream {
		ln.Close()
	}
	f.udp, f.stream = nil, nil
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
	var parts []string
	private := ""
	for _, b := range all {
		ip := b.addr.Addr()
		if ip.IsUnspecified() {
			ip = f.hostAddress()
		}
		ap := netip.AddrPortFrom(ip, b.addr.Port())
		parts = append(parts, sipfront.HostPort(b.transport, ap))
		if b.transport == "tcp" && private == "" {
			if f.opts.InNetwork(b.addr.Addr()) {
				private = b.addr.String()
			} else if b.addr.Addr().IsUnspecified() {
				if p, ok := privateInterface(f.opts.InNetwork); ok {
					private = netip.AddrPortFrom(p, b.addr.Port()).String()
				}
			}
		}
	}
	return strings.Join(parts, ","), private
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

// serve adapts a sipgo request to the front-agnostic handler.
func (f *Front) serve(req *sip.Request, tx sip.ServerTransaction) {
	w := &responder{req: req, tx: tx, log: f.log}
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	if f.draining.Load() {
		_ = w.Respond(context.Background(), &sipfront.Response{Code: 503, Headers: []sipfront.Header{{Name: "Retry-After", Value: "5"}}})
		return
	}
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("sip: panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			_ = w.Respond(context.Background(), &sipfront.Response{Code: 500})
		}
	}()
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		f.log.Warn("sip: overloaded, answering 503", "method", string(req.Method), "source", req.Source())
		_ = w.Respond(context.Background(), &sipfront.Response{Code: 503, Headers: []sipfront.Header{{Name: "Retry-After", Value: "5"}}})
		return
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		f.log.Warn("sip: request with unparseable source", "source", req.Source())
		_ = w.Respond(context.Background(), &sipfront.Response{Code: 400})
		return
	}
	r := &sipfront.Request{
		Msg:               req,
		Source:            netip.AddrPortFrom(src.Addr().Unmap(), src.Port()),
		Transport:         strings.ToLower(req.Transport()),
		SBCAddress:        f.SBCAddress(),
		PrivateSBCAddress: f.PrivateSBCAddress(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	f.handler.ServeSIP(ctx, w, r)
	if !w.sent {
		f.log.Error("sip: handler sent no answer", "method", string(req.Method))
		_ = w.Respond(ctx, &sipfront.Response{Code: 500})
	}
}

// responder answers through the sipgo server transaction.
type responder struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	log  *slog.Logger
	sent bool
}

func (w *responder) Respond(_ context.Context, r *sipfront.Response) error {
	if w.sent {
		return errors.New("native: response already sent")
	}
	w.sent = true
	if r.Code == sipfront.NoAnswer {
		return nil
	}
	res := BuildResponse(w.req, r)
	if err := w.tx.Respond(res); err != nil {
		return fmt.Errorf("native: respond %d: %w", r.Code, err)
	}
	return nil
}

// BuildResponse makes the SIP response for req from a front-agnostic answer.
func BuildResponse(req *sip.Request, r *sipfront.Response) *sip.Response {
	reason := r.Reason
	if reason == "" {
		reason = sipfront.ReasonPhrase(r.Code)
	}
	res := sip.NewResponseFromRequest(req, r.Code, reason, nil)
	// Headers our lenient parser kept as generic ones are not copied by sipgo.
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		if res.GetHeader(name) == nil {
			if h := req.GetHeader(name); h != nil {
				res.AppendHeader(sip.NewHeader(name, h.Value()))
			}
		}
	}
	for _, h := range r.Headers {
		res.AppendHeader(sip.NewHeader(h.Name, h.Value))
	}
	return res
}

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
	return len(f.udp)+len(f.stream) > 0 && !f.draining.Load()
}

// HasConnection reports whether the stack holds an open connection of the
// transport (tcp, tls, ws, wss) to addr (ip:port), which requests to that
// peer will reuse.
func (f *Front) HasConnection(transport, addr string) bool {
	c, err := f.ua.TransportLayer().GetConnection(transport, addr)
	return err == nil && c != nil
}
