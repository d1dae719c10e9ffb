package native

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Client sends requests this service originates (regbot REGISTER, gateway
// OPTIONS pings) through the front's SIP stack. Over UDP it sends from the
// socket the front listens on, so carriers see the SBC's SIP address and
// answer to it; over TCP/TLS it opens (and sipgo reuses) a connection.
type Client struct {
	front   *Front
	cli     *sipgo.Client
	timeout time.Duration
}

// NewClient returns the outbound side of f; call it after Listen. timeout
// bounds one transaction (0: 32 s, Timer F).
func (f *Front) NewClient(timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = 32 * time.Second
	}
	cli, err := sipgo.NewClient(f.ua, sipgo.WithClientLogger(stackLogger(f.log)))
	if err != nil {
		return nil, fmt.Errorf("native: client: %w", err)
	}
	return &Client{front: f, cli: cli, timeout: timeout}, nil
}

var _ sipfront.Client = (*Client)(nil)

// Do sends req.Msg and returns the final response. A timeout (transaction or
// the client's bound) is returned as a synthesized 408.
func (c *Client) Do(ctx context.Context, req sipfront.OutboundRequest) (*sip.Response, error) {
	if req.Msg == nil {
		return nil, errors.New("native: outbound request without message")
	}
	transport := strings.ToLower(req.Transport)
	if transport == "" {
		transport = "udp"
	}
	if transport != "udp" && transport != "tcp" && transport != "tls" {
		return nil, fmt.Errorf("native: outbound transport %q is not supported", req.Transport)
	}
	msg := req.Msg
	msg.SetTransport(strings.ToUpper(transport))
	if req.Destination != "" {
		msg.SetDestination(destination(req.Destination, transport))
	} else {
		msg.SetDestination(destination(msg.Recipient.HostPort(), transport))
	}
	// A fresh Via (new branch) per request: a reused branch makes the peer
	// see a retransmission and replay its cached answer (sipgo-notes).
	msg.RemoveHeader("Via")
	host, port := c.front.sentBy(transport)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport), Host: host, Port: port}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	msg.PrependHeader(via)
	if transport == "udp" {
		if laddr, ok := c.front.udpLocal(); ok && c.listening(ctx, laddr.String()) {
			msg.Laddr = laddr
		}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.cli.Do(ctx, msg)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, sip.ErrTransactionTimeout), errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return sip.NewResponseFromRequest(msg, 408, "Request Timeout", nil), nil
	}
	return nil, fmt.Errorf("native: %s to %s: %w", msg.Method, msg.Destination(), err)
}

// listening waits briefly for Serve to hand the UDP socket to sipgo (it
// starts in a goroutine); without it sipgo would try to bind the port again.
func (c *Client) listening(ctx context.Context, addr string) bool {
	tl := c.front.ua.TransportLayer()
	for i := 0; i < 100; i++ {
		if _, err := tl.GetConnection("udp", addr); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// destination adds the transport's default port to IP literals without one;
// names without a port are left bare so sipgo resolves them (A, then SRV).
func destination(hostport, transport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), ""
	}
	if port != "" {
		return net.JoinHostPort(host, port)
	}
	if ip := net.ParseIP(host); ip != nil {
		return net.JoinHostPort(host, strconv.Itoa(sip.DefaultPort(transport)))
	}
	return host
}

// sentBy is the Via host:port for transport: the advertised address and the
// listen port of that transport (the UDP one when there is none).
func (f *Front) sentBy(transport string) (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var bound []netip.AddrPort
	if transport != "udp" {
		for _, ln := range f.stream {
			bound = append(bound, addrPort(ln.Addr()))
		}
	}
	for _, pc := range f.udp {
		bound = append(bound, addrPort(pc.LocalAddr()))
	}
	if len(bound) == 0 {
		return f.hostAddress().String(), 0
	}
	ap := bound[0]
	ip := ap.Addr()
	if ip.IsUnspecified() {
		ip = f.hostAddress()
	}
	return ip.String(), int(ap.Port())
}

// udpLocal is the first UDP listener: sipgo reuses a pooled listener when the
// request's Laddr names it, instead of opening a new socket.
func (f *Front) udpLocal() (sip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.udp) == 0 {
		return sip.Addr{}, false
	}
	ap := addrPort(f.udp[0].LocalAddr())
	a := sip.Addr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port()), Hostname: ap.Addr().String()}
	return a, true
}

// PublicAddress is ip:port this SBC advertises for transport (the UDP one
// when that transport is not served), "" when unknown. Regbot puts it in
// Contact headers.
func (f *Front) PublicAddress(transport string) string {
	return sipfront.AddressFor(f.SBCAddress(), transport)
}
