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
var singleHeaders = []string{"To", "From", "Call-ID", "CSeq"}

// CheckRequest refuses what the SIP parser accepts but a registrar must
// not: a SIP version other than 2.0 (505), a repeated To/From/Call-ID/CSeq
// or Content-Length headers that disagree (400). Otherwise which value wins
// is up to each reader, and the webhook and the store could disagree.
func CheckRequest(req *sip.Request) *Violation {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return &Violation{Code: 505, Reason: "Only SIP/2.0 is supported"}
	}
	for _, name := range singleHeaders {
		if len(req.GetHeaders(name)) > 1 {
			return &Violation{Code: 400, Reason: "Duplicate " + name + " header"}
		}
	}
	if cls := req.GetHeaders("Content-Length"); len(cls) > 1 {
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
