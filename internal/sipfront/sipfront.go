// Package sipfront is the boundary between how SIP arrives (a native SIP
// stack, or a drachtio-server connection) and what the service does with it.
//
// A front only translates: it parses the message (sipmsg), fills a Request
// with what the transport knows (source, transport, this SBC's addresses)
// and hands it to the serving Loop (loop.go), which refuses malformed
// requests, admits a bounded number, recovers panics and makes sure every
// request is answered exactly once, before and after the Handler. The
// front's ResponseWriter turns the Response into SIP (sipmsg.BuildResponse:
// Via/From/To/Call-ID/CSeq copied from the request) and sends it.
package sipfront

import (
	"context"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Request is an inbound SIP request as the handlers see it.
type Request struct {
	// Msg is the parsed message. Headers the front could not parse are kept
	// as generic headers, so typed accessors (Msg.To()) may return nil.
	Msg *sip.Request
	// Source is the address the request came from.
	Source netip.AddrPort
	// Transport is where it arrived: udp, tcp, tls, ws or wss.
	Transport string
	// SBCAddress is this SBC's address list in drachtio hostport format
	// (udp/1.2.3.4:5060,tcp/1.2.3.4:5060,...).
	SBCAddress string
	// PrivateSBCAddress is ip:port of this SBC's private TCP address, if any.
	PrivateSBCAddress string
}

// Networks tells whether an address lies in this SBC's private networks
// (JAMBONES_NETWORK_CIDR); a nil Networks holds no address.
type Networks func(netip.Addr) bool

// Contains reports whether a is in the networks.
func (n Networks) Contains(a netip.Addr) bool { return n != nil && n(a) }

// Header returns the first value of the named header, "" when absent.
func (r *Request) Header(name string) string {
	if h := r.Msg.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// CallID returns the Call-ID, "" when absent.
func (r *Request) CallID() string { return r.Header("Call-ID") }

// NoAnswer as a Response Code makes the front send nothing (dropping
// abusive traffic instead of answering it).
const NoAnswer = 0

// Response is a final answer. The front adds the mandatory headers.
type Response struct {
	Code    int
	Reason  string // empty: the standard reason phrase
	Headers []Header
}

// Header is one extra response header.
type Header struct{ Name, Value string }

// Get returns the value of the named header in the response, "" when absent.
func (r *Response) Get(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// ResponseWriter sends the final answer to a request.
type ResponseWriter interface {
	Respond(ctx context.Context, res *Response) error
}

// Handler serves one request. It must answer through w exactly once.
type Handler interface {
	ServeSIP(ctx context.Context, w ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request)

// ServeSIP calls f.
func (f HandlerFunc) ServeSIP(ctx context.Context, w ResponseWriter, r *Request) { f(ctx, w, r) }

// Mux routes requests by method.
type Mux struct {
	handlers map[string]Handler
}

// NewMux returns an empty Mux; unrouted methods are answered 405.
func NewMux() *Mux { return &Mux{handlers: map[string]Handler{}} }

// Handle routes method (e.g. "REGISTER") to h.
func (m *Mux) Handle(method string, h Handler) { m.handlers[strings.ToUpper(method)] = h }

// Methods lists the routed methods.
func (m *Mux) Methods() []string {
	out := make([]string, 0, len(m.handlers))
	for k := range m.handlers {
		out = append(out, k)
	}
	return out
}

// ServeSIP dispatches r.
func (m *Mux) ServeSIP(ctx context.Context, w ResponseWriter, r *Request) {
	if h, ok := m.handlers[string(r.Msg.Method)]; ok {
		h.ServeSIP(ctx, w, r)
		return
	}
	_ = w.Respond(ctx, &Response{Code: 405})
}

// TransportFromVia returns the transport named by the top Via
// (udp, tcp, tls, ws, wss), "" when unknown.
func TransportFromVia(msg *sip.Request) string {
	via := msg.Via()
	if via == nil {
		return ""
	}
	t := strings.ToLower(via.Transport)
	switch t {
	case "udp", "tcp", "tls", "ws", "wss":
		return t
	}
	return ""
}

// ReasonPhrase returns the standard reason phrase of a SIP status code.
func ReasonPhrase(code int) string {
	if s, ok := reasons[code]; ok {
		return s
	}
	switch {
	case code < 200:
		return "Trying"
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirection"
	case code < 500:
		return "Client Error"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}

var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 200: "OK", 202: "Accepted",
	301: "Moved Permanently", 302: "Moved Temporarily",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
	413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
	416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
	423: "Interval Too Brief", 429: "Too Many Requests", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
	484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
	513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
	604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// OutboundRequest is a request this service originates (regbot REGISTER,
// gateway OPTIONS ping).
type OutboundRequest struct {
	// Msg is the complete request: Request-URI, From (with tag), To,
	// Call-ID, CSeq, Contact, Expires, User-Agent ... The front adds Via
	// (and Max-Forwards/Content-Length when missing).
	Msg *sip.Request
	// Destination is the next hop, host[:port] (an outbound proxy or the
	// gateway); empty means the Request-URI host. A name without port is
	// resolved with DNS SRV then A.
	Destination string
	// Transport is udp, tcp or tls.
	Transport string
}

// Client sends requests this service originates.
type Client interface {
	// Do sends req and returns its final response; a transaction timeout is
	// returned as a synthesized 408 response, not an error. Errors are for
	// requests that could not be sent at all. To answer a 401/407 challenge
	// the caller sends a new request with the same Call-ID and From tag as
	// the response and CSeq + 1.
	Do(ctx context.Context, req OutboundRequest) (*sip.Response, error)
}
