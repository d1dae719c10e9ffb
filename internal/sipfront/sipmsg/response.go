package sipmsg

import (
	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// BuildResponse makes the SIP response to req from a handler's answer: the
// status line, Via/From/To/Call-ID/CSeq copied from the request (sipgo adds a
// To tag) and the answer's headers.
func BuildResponse(req *sip.Request, r *sipfront.Response) *sip.Response {
	reason := r.Reason
	if reason == "" {
		reason = sipfront.ReasonPhrase(r.Code)
	}
	res := sip.NewResponseFromRequest(req, r.Code, reason, nil)
	// sipgo copies the request's version; we only speak 2.0 (a SIP/3.0
	// request gets "SIP/2.0 505").
	res.SipVersion = "SIP/2.0"
	// Headers the lenient parser kept as generic ones are not copied by sipgo.
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
