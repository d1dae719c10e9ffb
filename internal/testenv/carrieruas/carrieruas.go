// Package carrieruas is a carrier's registrar for tests of outbound
// registration over the transports sipp lacks (Debian's sipp has no TLS):
// it challenges every REGISTER without credentials, accepts the configured
// user and password, and keeps one binding per Contact.
package carrieruas

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
)

// Options describe the registrar.
type Options struct {
	Transport string // udp, tcp or tls
	Addr      string // ip:port to listen on
	TLS       *tls.Config
	Realm     string
	User      string
	Password  string
	Expires   int // granted; default 600
}

// Request is one REGISTER received.
type Request struct {
	Raw     string
	Source  string
	Contact string
	Expires string
}

// UAS is a running registrar.
type UAS struct {
	opts   Options
	ua     *sipgo.UserAgent
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	requests []Request
	bindings map[string]time.Time // Contact URI -> expiry
}

// Start listens and serves until Close.
func Start(opts Options) (*UAS, error) {
	if opts.Expires <= 0 {
		opts.Expires = 600
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("carrieruas"))
	if err != nil {
		return nil, fmt.Errorf("carrieruas: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("carrieruas: %w", err)
	}
	u := &UAS{opts: opts, ua: ua, done: make(chan struct{}), bindings: map[string]time.Time{}}
	srv.OnRegister(u.serve)
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	var ln net.Listener
	var pc net.PacketConn
	switch opts.Transport {
	case "udp":
		pc, err = net.ListenPacket("udp", opts.Addr)
	case "tcp":
		ln, err = net.Listen("tcp", opts.Addr)
	case "tls":
		ln, err = tls.Listen("tcp", opts.Addr, opts.TLS)
	default:
		err = fmt.Errorf("transport %q", opts.Transport)
	}
	if err != nil {
		cancel()
		ua.Close()
		return nil, fmt.Errorf("carrieruas: listen: %w", err)
	}
	go func() {
		defer close(u.done)
		switch {
		case pc != nil:
			_ = srv.ServeUDP(pc)
		case opts.Transport == "tls":
			_ = srv.ServeTLS(ln)
		default:
			_ = srv.ServeTCP(ln)
		}
	}()
	go func() {
		<-ctx.Done()
		if pc != nil {
			pc.Close()
		}
		if ln != nil {
			ln.Close()
		}
	}()
	return u, nil
}

// Close stops the registrar.
func (u *UAS) Close() {
	u.cancel()
	<-u.done
	u.ua.Close()
}

// Requests returns the REGISTERs received, in order.
func (u *UAS) Requests() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Request(nil), u.requests...)
}

// Bindings returns the Contact URIs currently bound, sorted.
func (u *UAS) Bindings() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for c, exp := range u.bindings {
		if time.Now().Before(exp) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func (u *UAS) serve(req *sip.Request, tx sip.ServerTransaction) {
	contact, expires := "", ""
	if h := req.Contact(); h != nil {
		contact = h.Address.String()
		if v, ok := h.Params.Get("expires"); ok {
			expires = v
		}
	}
	if h := req.GetHeader("Expires"); h != nil && expires == "" {
		expires = h.Value()
	}
	u.mu.Lock()
	u.requests = append(u.requests, Request{Raw: req.String(), Source: req.Source(), Contact: contact, Expires: expires})
	u.mu.Unlock()

	h := req.GetHeader("Authorization")
	if h == nil {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", digest.Challenge{Realm: u.opts.Realm, Nonce: digest.NewNonce()}.String()))
		_ = tx.Respond(res)
		return
	}
	cred, err := digest.ParseAuthorization(h.Value())
	if err != nil || cred.Username != u.opts.User || !digest.Verify(cred, "REGISTER", u.opts.Password) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	granted := u.opts.Expires
	if n, err := strconv.Atoi(strings.TrimSpace(expires)); err == nil && n < granted {
		granted = n
	}
	u.mu.Lock()
	if granted == 0 {
		delete(u.bindings, contact)
	} else {
		u.bindings[contact] = time.Now().Add(time.Duration(granted) * time.Second)
	}
	u.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if contact != "" && granted > 0 {
		res.AppendHeader(sip.NewHeader("Contact", "<"+contact+">;expires="+strconv.Itoa(granted)))
	}
	_ = tx.Respond(res)
}
