package drachtiofront

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Do sends req through drachtio-server and returns its final response as
// drachtio reports it (a stack timeout arrives as 408, a transport failure
// as 503). The response carries the Call-ID, From tag and CSeq of the
// request as sent, which a digest retry reuses (CSeq + 1).
func (f *Front) Do(ctx context.Context, or sipfront.OutboundRequest) (*sip.Response, error) {
	if or.Msg == nil {
		return nil, errors.New("drachtiofront: no request")
	}
	req := or.Msg.Clone()
	req.SetBody(or.Msg.Body())
	// Via and Content-Length are the stack's; Route may not be set.
	for _, name := range []string{"Via", "Route", "Content-Length"} {
		for req.RemoveHeader(name) {
		}
	}
	proxy := NextHop(req.Recipient, or.Destination, or.Transport)
	tx, err := f.client.Request(ctx, proxy, req.String())
	if err != nil {
		return nil, fmt.Errorf("drachtiofront: send %s: %w", req.Method, err)
	}
	m, err := tx.Final(ctx)
	if err != nil {
		return nil, fmt.Errorf("drachtiofront: %s: %w", req.Method, err)
	}
	msg, err := f.parser.ParseSIP([]byte(m.SIP))
	if err != nil {
		return nil, fmt.Errorf("drachtiofront: response does not parse: %w", err)
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		return nil, errors.New("drachtiofront: a request arrived as a response")
	}
	if src, err := source(m.Field(5), m.Field(6)); err == nil {
		res.SetSource(src.String())
	}
	return res, nil
}

// NextHop is the proxy URI of a "sip|||<proxy>" command: the destination
// (host[:port]) or the Request-URI host, with the transport.
func NextHop(ruri sip.Uri, destination, transport string) string {
	transport = strings.ToLower(transport)
	if destination == "" {
		if transport == "" {
			return "" // RFC 3263 resolution of the Request-URI by the server
		}
		destination = ruri.Host
		if ruri.Port != 0 {
			destination = fmt.Sprintf("%s:%d", ruri.Host, ruri.Port)
		}
	}
	if ap, err := netip.ParseAddrPort(destination); err == nil && ap.Addr().Is6() {
		destination = fmt.Sprintf("[%s]:%d", ap.Addr(), ap.Port())
	}
	scheme := "sip:"
	if ruri.Scheme == "sips" {
		scheme = "sips:"
	}
	hop := scheme + destination
	if transport != "" {
		hop += ";transport=" + transport
	}
	return hop
}
