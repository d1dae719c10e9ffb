// Package drachtiofront is the SIP front for running inside a jambonz SBC:
// SIP port 5060 belongs to drachtio-server, and this service is one of its
// clients (like sbc-inbound and sbc-outbound). Incoming REGISTER/OPTIONS
// arrive as drachtio "sip" frames and go to the same sipfront.Handler as in
// native mode; requests this service originates (regbot, gateway pings) are
// sent through drachtio-server by Do.
package drachtiofront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/drachtio"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

// Options configure the front.
type Options struct {
	Addr   string // drachtio-server control host:port
	Secret string
	TLS    *tls.Config
	// InNetwork tells private addresses (JAMBONES_NETWORK_CIDR).
	InNetwork sipfront.Networks
	// Loop configures the serving loop (in-flight bound, request timeout);
	// drachtio-server forgets an unanswered request after 64 s, so a request
	// timeout above 50 s is lowered to the default.
	Loop sipfront.LoopOptions
	// Client tunes the protocol client (ping, backoff); Addr, Secret, TLS,
	// Routes and the callbacks are set by the front.
	Client drachtio.Options
	// OnSession, when set, is called after every (re)connect, once
	// SBCAddress and PublicAddresses reflect the new session (drachtio's
	// addresses may change across reconnects). It must not block.
	OnSession func()
	Log       *slog.Logger
}

// Front is the drachtio SIP front.
type Front struct {
	opts   Options
	loop   *sipfront.Loop
	client *drachtio.Client
	parser *sip.Parser
	log    *slog.Logger
	wg     sync.WaitGroup // request goroutines

	mu      sync.Mutex
	session drachtio.Session
	private string
	ready   chan struct{}
}

// New builds the front for the given methods (e.g. REGISTER, OPTIONS); Serve
// connects it.
func New(opts Options, h sipfront.Handler, methods []string) (*Front, error) {
	if opts.Addr == "" {
		return nil, errors.New("drachtiofront: no drachtio-server address")
	}
	if opts.Loop.RequestTimeout > 50*time.Second {
		opts.Loop.RequestTimeout = sipfront.DefaultRequestTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	f := &Front{opts: opts, loop: sipfront.NewLoop(h, opts.Log, opts.Loop), parser: sipmsg.NewParser(), log: opts.Log,
		ready: make(chan struct{})}
	co := opts.Client
	co.Addr, co.Secret, co.TLS, co.Log = opts.Addr, opts.Secret, opts.TLS, opts.Log
	co.Routes = nil
	for _, m := range methods {
		co.Routes = append(co.Routes, strings.ToLower(m))
	}
	co.OnRequest = f.onRequest
	co.OnSession = f.onSession
	f.client = drachtio.New(co)
	return f, nil
}

// Serve keeps the connection to drachtio-server up until ctx ends, then
// waits for the requests in progress.
func (f *Front) Serve(ctx context.Context) error {
	err := f.client.Run(ctx)
	f.loop.Drain(context.Background())
	f.wg.Wait()
	return err
}

// Ready is closed once the first session is up.
func (f *Front) Ready() <-chan struct{} { return f.ready }

func (f *Front) onSession(s drachtio.Session) {
	private := PrivateAddress(s.LocalHostports, f.opts.InNetwork.Contains)
	f.mu.Lock()
	first := f.session.Hostports == "" && f.private == ""
	f.session, f.private = s, private
	f.mu.Unlock()
	f.log.Info("sip: drachtio front connected", "sbc_address", s.Hostports, "private_sbc_address", private,
		"server", s.ServerAddr, "version", s.Version)
	if first {
		select {
		case <-f.ready:
		default:
			close(f.ready)
		}
	}
	if f.opts.OnSession != nil {
		f.opts.OnSession()
	}
}

// SBCAddress is drachtio's whole hostports string, stored verbatim as
// sbcAddress (sbc-outbound compares it with its own).
func (f *Front) SBCAddress() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.session.Hostports
}

// PrivateSBCAddress is ip:port of the tcp entry of the local hostports that
// lies inside JAMBONES_NETWORK_CIDR, "" when none.
func (f *Front) PrivateSBCAddress() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.private
}

// PublicAddresses are the public SIP addresses for sbc_addresses.
func (f *Front) PublicAddresses() []PublicAddress {
	return PublicAddresses(f.SBCAddress())
}

// PrivateAddress picks the tcp entry of hostports inside the private networks.
func PrivateAddress(hostports string, in func(netip.Addr) bool) string {
	for _, hp := range sipfront.ParseHostports(hostports) {
		if hp.Transport != "tcp" {
			continue
		}
		if a, err := netip.ParseAddr(hp.Host); err == nil && in(a) {
			return netip.AddrPortFrom(a, uint16(hp.Port)).String()
		}
	}
	return ""
}

// PublicAddress is one public IPv4 of the SBC with its SIP ports, the shape
// of an sbc_addresses row.
type PublicAddress struct {
	IPv4    string
	Port    int // udp/tcp SIP port
	TLSPort int // 0 when none
	WSSPort int // 0 when none
}

// PublicAddresses groups hostports by host: udp/tcp -> SIP port, tls -> TLS
// port, wss -> WSS port, as the original sidecar does.
func PublicAddresses(hostports string) []PublicAddress {
	var out []PublicAddress
	idx := map[string]int{}
	for _, hp := range sipfront.ParseHostports(hostports) {
		a, err := netip.ParseAddr(hp.Host)
		if err != nil || !a.Is4() {
			continue
		}
		i, ok := idx[hp.Host]
		if !ok {
			i = len(out)
			idx[hp.Host] = i
			out = append(out, PublicAddress{IPv4: hp.Host})
		}
		switch hp.Transport {
		case "udp", "tcp":
			if out[i].Port == 0 {
				out[i].Port = hp.Port
			}
		case "tls":
			out[i].TLSPort = hp.Port
		case "wss":
			out[i].WSSPort = hp.Port
		}
	}
	return out
}

// onRequest runs on the client's reader goroutine: it only parses and hands
// the request to a goroutine of its own.
func (f *Front) onRequest(m drachtio.Message) {
	txn := m.Field(8)
	if txn == "" || txn == "unsolicited" {
		return
	}
	msg, err := f.parser.ParseSIP([]byte(m.SIP))
	if err != nil {
		f.log.Warn("sip: drachtio request does not parse, dropped", "err", err, "txn", txn)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.serve(&responder{f: f, txn: txn, req: req}, req, m)
	}()
}

// serve translates a drachtio "sip" frame for the serving loop.
func (f *Front) serve(w *responder, req *sip.Request, m drachtio.Message) {
	src, err := source(m.Field(5), m.Field(6))
	if err != nil {
		f.log.Warn("sip: drachtio request with bad source", "addr", m.Field(5), "port", m.Field(6))
		_ = w.Respond(context.Background(), &sipfront.Response{Code: 400})
		return
	}
	req.SetSource(src.String())
	transport := strings.ToLower(m.Field(4))
	// drachtio reports WebSocket as tcp: the top Via tells WS/WSS apart.
	if v := sipfront.TransportFromVia(req); v == "ws" || v == "wss" || transport == "" {
		transport = v
	}
	req.SetTransport(strings.ToUpper(transport))
	f.loop.ServeSIP(context.Background(), w, &sipfront.Request{
		Msg:               req,
		Source:            src,
		Transport:         transport,
		SBCAddress:        f.SBCAddress(),
		PrivateSBCAddress: f.PrivateSBCAddress(),
	})
}

// source parses fields 5/6; an empty port means 5060, as in srf.
func source(addr, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("drachtiofront: source address %q: %w", addr, err)
	}
	p := 5060
	if port != "" {
		if p, err = strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return netip.AddrPort{}, fmt.Errorf("drachtiofront: source port %q", port)
		}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// responder answers one drachtio server transaction; the loop sees that it
// answers once, with a final response.
type responder struct {
	f   *Front
	txn string
	req *sip.Request
}

func (w *responder) Respond(ctx context.Context, r *sipfront.Response) error {
	// drachtio-server keeps a transaction open until it is answered, so
	// "drop" (AUTH_BAN_ACTION=drop) becomes a plain refusal here.
	if r.Code == sipfront.NoAnswer {
		r = &sipfront.Response{Code: 403}
	}
	res := sipmsg.BuildResponse(w.req, r)
	// drachtio-server fills Via and Content-Length itself.
	for res.RemoveHeader("Via") {
	}
	if ctx.Err() != nil {
		// Still try: the handler's deadline is ours, not drachtio's 64 s.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	if _, err := w.f.client.Command(ctx, []string{"sip", w.txn, ""}, res.String()); err != nil {
		w.f.log.Warn("sip: drachtio did not send the response", "code", r.Code, "txn", w.txn, "err", err)
		return fmt.Errorf("drachtiofront: respond %d: %w", r.Code, err)
	}
	return nil
}

// Connected reports whether a session with drachtio-server is up (readiness).
func (f *Front) Connected() bool {
	_, ok := f.client.Session()
	return ok
}

// PublicAddress returns ip:port of this SBC for transport, from drachtio's
// hostports (Contact of outbound registrations).
func (f *Front) PublicAddress(transport string) string {
	return sipfront.AddressFor(f.SBCAddress(), transport)
}

// InFlight returns how many requests are being handled.
func (f *Front) InFlight() int64 { return f.loop.InFlight() }
