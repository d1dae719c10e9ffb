package sipfront

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Violation is why the loop refuses a request before any handler sees it.
type Violation struct {
	Code   int    // 400 or 505
	Reason string // X-Reason text
	// Framing is set when the message boundaries are in doubt (conflicting
	// Content-Length): a stream connection cannot be trusted further.
	Framing bool
}

// singleHeaders may appear once (RFC 3261 section 7.3.1: only headers
// defined as comma-separated lists may repeat). Compact forms are stored
// under these names by the parser.
var singleHeaders = [...]string{"To", "From", "Call-ID", "CSeq"}

// CheckRequest refuses what the SIP parser accepts but a registrar must
// not: a SIP version other than 2.0 (505), a repeated To/From/Call-ID/CSeq
// or Content-Length headers that disagree (400). Otherwise which value wins
// is up to each reader, and the webhook and the store could disagree.
func CheckRequest(req *sip.Request) *Violation {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return &Violation{Code: 505, Reason: "Only SIP/2.0 is supported"}
	}
	// One pass over the headers, without sipgo's GetHeaders (it lower-cases,
	// and so allocates, the name of every header for every lookup).
	var counts [len(singleHeaders)]int
	var cls []sip.Header
	for _, h := range req.Headers() {
		n := h.Name()
		for i, name := range singleHeaders {
			if asciiEqualFold(n, name) {
				counts[i]++
			}
		}
		if asciiEqualFold(n, "Content-Length") {
			cls = append(cls, h)
		}
	}
	for i, name := range singleHeaders {
		if counts[i] > 1 {
			return &Violation{Code: 400, Reason: "Duplicate " + name + " header"}
		}
	}
	if len(cls) > 1 {
		first, err := strconv.ParseUint(strings.TrimSpace(cls[0].Value()), 10, 32)
		for _, h := range cls[1:] {
			n, err2 := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
			if err != nil || err2 != nil || n != first {
				return &Violation{Code: 400, Reason: "Conflicting Content-Length headers", Framing: true}
			}
		}
	}
	return nil
}

// Response is the answer to the violation.
func (v *Violation) Response() *Response {
	return &Response{Code: v.Code, Headers: []Header{{Name: "X-Reason", Value: v.Reason}}}
}

// HeadersNamed returns the headers called name (ASCII case-insensitive, as
// sipgo's GetHeaders compares them) without allocating for the lookup.
func HeadersNamed(msg *sip.Request, name string) []sip.Header {
	var out []sip.Header
	for _, h := range msg.Headers() {
		if asciiEqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// asciiEqualFold compares header names as sipgo does (ASCII lower case).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
