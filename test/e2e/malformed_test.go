package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// register builds a REGISTER from the sipp-like client at 127.0.0.1:lport
// with the given header lines replacing the defaults (a value of "" drops
// the header).
func register(transport string, lport int, override map[string]string) string {
	headers := []struct{ name, value string }{
		{"Via", fmt.Sprintf("SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK-%d", strings.ToUpper(transport), lport, time.Now().UnixNano())},
		{"Max-Forwards", "70"},
		{"From", "<sip:john@jambonz.org>;tag=1"},
		{"To", "<sip:john@jambonz.org>"},
		{"Call-ID", fmt.Sprintf("malformed-%d", time.Now().UnixNano())},
		{"CSeq", "1 REGISTER"},
		{"Contact", fmt.Sprintf("<sip:john@127.0.0.1:%d>", lport)},
		{"Expires", "3600"},
	}
	var b strings.Builder
	b.WriteString("REGISTER sip:jambonz.org SIP/2.0\r\n")
	seen := map[string]bool{}
	for _, h := range headers {
		v, ok := override[h.name]
		seen[h.name] = true
		if !ok {
			v = h.value
		}
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", h.name, v)
		}
	}
	for k, v := range override {
		if !seen[k] && v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// exchange sends one message and returns the status line and headers of the
// first final answer ("" when none came within the timeout).
func exchange(t *testing.T, transport, target string, lport int, msg string) string {
	t.Helper()
	var conn net.Conn
	var err error
	if transport == "udp" {
		conn, err = net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: lport}, mustUDP(target))
	} else {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
		conn, err = d.Dial("tcp", target)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	for {
		var head strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return ""
			}
			if line == "\r\n" {
				break
			}
			head.WriteString(line)
		}
		if !strings.HasPrefix(head.String(), "SIP/2.0 1") {
			return head.String()
		}
	}
}

func mustUDP(addr string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		panic(err)
	}
	return a
}

// TestMalformedRegister: bad REGISTERs get a SIP error answer, nothing is
// stored and the process keeps running.
func TestMalformedRegister(t *testing.T) {
	rdb := redisClient(t)
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15066,tcp:127.0.0.1:15066"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15066"

	cases := []struct {
		name     string
		override map[string]string
		want     string // status code prefix; "" = no answer acceptable
		reason   string // expected X-Reason substring
	}{
		{"no Contact", map[string]string{"Contact": ""}, "400", "Contact header is required"},
		{"bad expires", map[string]string{"Expires": "soon"}, "400", "expires"},
		{"negative contact expires", map[string]string{"Contact": "<sip:john@127.0.0.1:5999>;expires=-5", "Expires": ""}, "400", ""},
		{"no expires at all", map[string]string{"Expires": ""}, "400", ""},
		{"garbage Authorization", map[string]string{"Authorization": `Digest username="john, realm=`}, "400", "Authorization"},
		{"non-digest Authorization", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, "400", "Authorization"},
		{"missing To", map[string]string{"To": ""}, "400", "To"},
		{"unparseable To", map[string]string{"To": "garbage<<"}, "403", "Invalid address of record"},
		{"missing Call-ID", map[string]string{"Call-ID": ""}, "", ""},
		{"missing CSeq", map[string]string{"CSeq": ""}, "", ""},
		{"wildcard with expires", map[string]string{"Contact": "*"}, "400", "Contact *"},
		{"unparseable Contact", map[string]string{"Contact": "<sip:broken"}, "400", "Contact"},
		{"huge header", map[string]string{"X-Junk": strings.Repeat("a", 20000)}, "401", ""},
		{"huge expires", map[string]string{"Expires": "99999999999999999999"}, "400", ""},
		{"overflowing but numeric expires", map[string]string{"Expires": "9999999999"}, "401", ""},
	}
	for _, transport := range []string{"udp", "tcp"} {
		for i, tc := range cases {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				lport := 15070 + i
				answer := exchange(t, transport, target, lport, register(transport, lport, tc.override))
				if tc.want == "" {
					if answer != "" && !strings.HasPrefix(answer, "SIP/2.0 4") {
						t.Errorf("answer = %q, want none or 4xx", firstLine(answer))
					}
					return
				}
				if !strings.HasPrefix(answer, "SIP/2.0 "+tc.want) {
					t.Fatalf("answer = %q, want %s", firstLine(answer), tc.want)
				}
				if tc.reason != "" && !strings.Contains(answer, tc.reason) {
					t.Errorf("answer lacks %q:\n%s", tc.reason, answer)
				}
			})
		}
	}
	select {
	case <-proc.Done():
		t.Fatalf("service exited:\n%s", proc.Logs())
	default:
	}
	if keys := registrationKeys(t, rdb); len(keys) != 0 {
		t.Errorf("malformed REGISTERs wrote to Redis: %v", keys)
	}
	if strings.Contains(proc.Logs(), "panic") {
		t.Errorf("service logged a panic")
	}
	if !proc.WaitLog("register: no Contact header") {
		t.Errorf("malformed requests were not logged")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	return line
}
