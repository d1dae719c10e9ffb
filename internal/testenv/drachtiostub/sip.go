package drachtiostub

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// --- SIP side: incoming ---

func (s *Server) serveUDP(pc *net.UDPConn) {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		data := append([]byte(nil), buf[:n]...)
		reply := func(b []byte) error { _, err := pc.WriteToUDP(b, from); return err }
		s.onSIP(data, "udp", from.IP.String(), from.Port, pc.LocalAddr(), reply, nil)
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
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
}

// readStream reads SIP messages from a TCP connection (header block plus
// Content-Length body).
func (s *Server) readStream(nc net.Conn, proto string, local net.Addr) {
	r := bufio.NewReader(nc)
	ra := nc.RemoteAddr().(*net.TCPAddr)
	reply := func(b []byte) error { _, err := nc.Write(b); return err }
	for {
		data, err := readSIP(r)
		if err != nil {
			return
		}
		s.onSIP(data, proto, ra.IP.String(), ra.Port, local, reply, nc)
	}
}

func readSIP(r *bufio.Reader) ([]byte, error) {
	var head bytes.Buffer
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			continue // keepalive CRLFs
		}
		head.WriteString(line)
		name, value, ok := strings.Cut(line, ":")
		if ok {
			n := strings.ToLower(strings.TrimSpace(name))
			if n == "content-length" || n == "l" {
				length, _ = strconv.Atoi(strings.TrimSpace(value))
			}
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	head.Write(body)
	return head.Bytes(), nil
}

func (s *Server) onSIP(data []byte, proto, srcIP string, srcPort int, local net.Addr, reply func([]byte) error, stream net.Conn) {
	msg, err := sip.ParseMessage(data)
	if err != nil {
		s.log.Warn("drachtiostub: unparsable SIP dropped", "err", err)
		return
	}
	switch m := msg.(type) {
	case *sip.Request:
		s.onRequest(m, len(data), proto, srcIP, srcPort, local, reply)
	case *sip.Response:
		s.onResponse(m, len(data), proto, srcIP, srcPort)
	}
}

func (s *Server) onRequest(req *sip.Request, size int, proto, srcIP string, srcPort int, local net.Addr, reply func([]byte) error) {
	via := req.Via()
	if via == nil || req.CSeq() == nil || req.CallID() == nil || req.From() == nil || req.To() == nil {
		_ = reply([]byte(plainResponse(req, 400, "Bad Request")))
		return
	}
	branch, _ := via.Params.Get("branch")
	key := fmt.Sprintf("%s:%d/%s/%s", srcIP, srcPort, branch, req.Method)
	s.mu.Lock()
	if t, ok := s.byBranch[key]; ok {
		answered := t.answered
		s.mu.Unlock()
		if answered != nil { // retransmission after the answer: replay it
			_ = reply(answered)
		} // else: still waiting on the client, discard
		return
	}
	verb := strings.ToLower(string(req.Method))
	cs := s.routes[verb]
	if len(cs) == 0 {
		s.mu.Unlock()
		_ = reply([]byte(plainResponse(req, 503, "Service Unavailable")))
		return
	}
	c := cs[s.rr[verb]%len(cs)]
	s.rr[verb]++
	// The stack adds rport (and received when the sent-by host differs).
	via.Params.Add("rport", strconv.Itoa(srcPort))
	if via.Host != srcIP {
		via.Params.Add("received", srcIP)
	}
	t := &serverTxn{id: newID(), req: req, reply: reply, proto: proto, src: peer{srcIP, srcPort}, created: time.Now()}
	s.inbound[t.id] = t
	s.byBranch[key] = t
	s.mu.Unlock()
	time.AfterFunc(s.opts.AnswerWindow, func() {
		s.mu.Lock()
		delete(s.inbound, t.id)
		delete(s.byBranch, key)
		s.mu.Unlock()
	})
	lh, lp, _ := net.SplitHostPort(local.String())
	leader := strings.Join([]string{newID(), "sip", "network", strconv.Itoa(size), proto, srcIP, strconv.Itoa(srcPort),
		stackTime(), t.id, "", lh, lp, ""}, "|")
	s.write(c, leader+"\r\n"+req.String())
}

// plainResponse is a response the stack sends by itself.
func plainResponse(req *sip.Request, code int, reason string) string {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Content-Length", "0"))
	return res.String()
}

// ignoredInAnswers are dropped from client answers/requests (protocol doc 5).
var ignoredInAnswers = map[string]bool{"via": true, "route": true, "record-route": true, "rseq": true, "content-length": true}

// answerIncoming relays the client's answer to an incoming request.
func (s *Server) answerIncoming(c *client, id, txnID, sipText string) {
	s.mu.Lock()
	t, ok := s.inbound[txnID]
	if ok {
		delete(s.inbound, txnID)
	}
	s.mu.Unlock()
	if !ok {
		s.write(c, s.respond(c, id, "NOK", "Response not sent due to unknown transaction"))
		return
	}
	msg, err := sip.ParseMessage([]byte(sipText))
	res, isRes := msg.(*sip.Response)
	if err != nil || !isRes {
		s.write(c, s.respond(c, id, "NOK", "Unknown server error sending response"))
		return
	}
	out := sip.NewResponse(res.StatusCode, res.Reason)
	for _, v := range t.req.GetHeaders("Via") {
		out.AppendHeader(v)
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		if res.GetHeader(name) == nil {
			if h := t.req.GetHeader(name); h != nil {
				out.AppendHeader(sip.HeaderClone(h))
			}
		}
	}
	for _, h := range res.Headers() {
		if !ignoredInAnswers[strings.ToLower(h.Name())] {
			out.AppendHeader(h)
		}
	}
	if to := out.To(); to != nil && res.StatusCode > 100 && !to.Params.Has("tag") {
		to.Params.Add("tag", newID()[:10])
	}
	out.SetBody(res.Body())
	if out.ContentLength() == nil {
		out.AppendHeader(sip.NewHeader("Content-Length", "0"))
	}
	wire := []byte(out.String())
	if err := t.reply(wire); err != nil {
		s.write(c, s.respond(c, id, "NOK", "transport for response has been shutdown or closed"))
		return
	}
	s.mu.Lock()
	t.answered = wire
	s.answered++
	s.mu.Unlock()
	s.write(c, s.respond(c, id, "OK", "application", strconv.Itoa(len(wire)), t.proto, t.src.ip,
		strconv.Itoa(t.src.port), stackTime(), txnID, "", "", "Msg sent:", "")+"\r\n"+string(wire))
}
