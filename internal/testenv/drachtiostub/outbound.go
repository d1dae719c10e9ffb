package drachtiostub

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// --- SIP side: requests the client sends ---

// sendRequest handles "<id>|sip|||<proxy>" + request: completes the request
// as the stack would, echoes it, sends it and relays the responses.
func (s *Server) sendRequest(c *client, id, proxy, sipText string) {
	msg, err := sip.ParseMessage([]byte(sipText))
	req, ok := msg.(*sip.Request)
	if err != nil || !ok {
		s.write(c, s.respond(c, id, "NOK", "invalid request"))
		return
	}
	var next sip.Uri
	if proxy != "" {
		if err := sip.ParseUri(proxy, &next); err != nil {
			s.write(c, s.respond(c, id, "NOK", "invalid request-uri: "+proxy))
			return
		}
	} else {
		next = req.Recipient
	}
	transport := "udp"
	if v, ok := next.UriParams.Get("transport"); ok && v != "" {
		transport = strings.ToLower(v)
	}
	port := next.Port
	if port == 0 {
		port = 5060
	}
	dest := net.JoinHostPort(next.Host, strconv.Itoa(port))
	var local net.Addr
	switch transport {
	case "udp":
		if len(s.udp) > 0 {
			local = s.udp[0].LocalAddr()
		}
	case "tcp":
		if len(s.tcp) > 0 {
			local = s.tcp[0].Addr()
		}
	}
	if local == nil {
		s.write(c, s.respond(c, id, "NOK", "requested protocol/transport not available"))
		return
	}
	lh, lp, _ := net.SplitHostPort(local.String())
	sentBy := lh
	if ext := s.externalIP(); ext != "" {
		sentBy = ext
	}

	// Complete the request: Via, Max-Forwards, From tag, To, Call-ID, CSeq.
	for _, name := range []string{"Via", "Route", "Record-Route", "RSeq", "Content-Length"} {
		for req.RemoveHeader(name) {
		}
	}
	branch := sip.GenerateBranch()
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Host: sentBy, Port: atoi(lp), Params: sip.NewParams()}
	via.Params.Add("rport", "")
	via.Params.Add("branch", branch)
	req.PrependHeader(via)
	if req.MaxForwards() == nil {
		req.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	}
	if req.From() == nil {
		req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Host: sentBy, Port: atoi(lp)}, Params: sip.NewParams()})
	}
	if f := req.From(); f != nil && !f.Params.Has("tag") {
		f.Params.Add("tag", newID()[:10])
	}
	if req.To() == nil {
		req.AppendHeader(&sip.ToHeader{Address: *req.Recipient.Clone(), Params: sip.NewParams()})
	}
	if req.CallID() == nil {
		cid := sip.CallIDHeader(newID())
		req.AppendHeader(&cid)
	}
	if req.CSeq() == nil {
		req.AppendHeader(&sip.CSeqHeader{SeqNo: uint32(time.Now().Unix() % 100000000), MethodName: req.Method})
	}
	req.SetBody(req.Body())
	if req.ContentLength() == nil {
		req.AppendHeader(sip.NewHeader("Content-Length", "0"))
	}
	wire := []byte(req.String())

	t := &clientTxn{id: newID(), owner: c, req: req, proto: transport}
	s.mu.Lock()
	s.outbound[branch] = t
	s.sent = append(s.sent, string(wire))
	t.timer = time.AfterFunc(s.opts.TxnTimeout, func() { s.finishOutbound(branch, 408, "Request Timeout", "", 0, true) })
	s.mu.Unlock()

	// The echo goes out before anything can answer the request.
	s.write(c, s.respond(c, id, "OK", "application", strconv.Itoa(len(wire)), transport, lh, lp,
		stackTime(), t.id, "Msg sent:", "")+"\r\n"+string(wire))

	if transport == "udp" {
		ua, err := net.ResolveUDPAddr("udp", dest)
		if err == nil {
			_, err = s.udp[0].WriteToUDP(wire, ua)
		}
		if err != nil {
			s.finishOutbound(branch, 503, "Service Unavailable", "", 0, true)
		}
		return
	}
	nc, err := net.DialTimeout("tcp", dest, 2*time.Second)
	if err != nil {
		s.finishOutbound(branch, 503, "Service Unavailable", "", 0, true)
		return
	}
	s.mu.Lock()
	t.stream = nc
	s.mu.Unlock()
	if _, err := nc.Write(wire); err != nil {
		nc.Close()
		s.finishOutbound(branch, 503, "Service Unavailable", "", 0, true)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer nc.Close()
		go func() { <-s.closed; nc.Close() }()
		s.readStream(nc, "tcp", nc.LocalAddr())
	}()
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// onResponse relays a response to a request a client sent.
func (s *Server) onResponse(res *sip.Response, size int, proto, srcIP string, srcPort int) {
	via := res.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	if res.StatusCode == 100 {
		return // absorbed by the stack
	}
	s.mu.Lock()
	t, ok := s.outbound[branch]
	s.mu.Unlock()
	if !ok {
		return
	}
	leader := strings.Join([]string{newID(), "sip", "network", strconv.Itoa(size), proto, srcIP, strconv.Itoa(srcPort),
		stackTime(), t.id, "", ""}, "|")
	if res.StatusCode >= 200 {
		s.mu.Lock()
		_, still := s.outbound[branch]
		delete(s.outbound, branch)
		s.mu.Unlock()
		if !still {
			return
		}
		t.timer.Stop()
		if t.stream != nil {
			defer t.stream.Close()
		}
	}
	s.write(t.owner, leader+"\r\n"+res.String())
}

// finishOutbound ends a transaction with a response made by the stack.
func (s *Server) finishOutbound(branch string, code int, reason, srcIP string, srcPort int, _ bool) {
	s.mu.Lock()
	t, ok := s.outbound[branch]
	delete(s.outbound, branch)
	s.mu.Unlock()
	if !ok {
		return
	}
	t.timer.Stop()
	if t.stream != nil {
		t.stream.Close()
	}
	res := sip.NewResponseFromRequest(t.req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Content-Length", "0"))
	leader := strings.Join([]string{newID(), "sip", "network", "0", t.proto, srcIP, strconv.Itoa(srcPort),
		stackTime(), t.id, "", ""}, "|")
	s.write(t.owner, leader+"\r\n"+res.String())
}
