package drachtiofront_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
)

// The digest test vector of the protocol document (section 6.3).
func TestDigest_ProtocolDocVector(t *testing.T) {
	c := &digest.Credentials{Username: "12125550100", Realm: "carrier.example.net", Nonce: "5f1a2b3c",
		URI: "sip:carrier.example.net", QOP: "auth", NC: "00000001", CNonce: "0a4f113b"}
	if got, _ := digest.Response(c, "REGISTER", "s3cret"); got != "64ef68e092e9a40ade90315aa19928df" {
		t.Errorf("with qop: %s", got)
	}
	c.QOP = ""
	if got, _ := digest.Response(c, "REGISTER", "s3cret"); got != "970c5a7ecd27fc17721c185854c64616" {
		t.Errorf("without qop: %s", got)
	}
}

func TestNextHop(t *testing.T) {
	ruri := sip.Uri{Scheme: "sip", Host: "carrier.example.net"}
	for _, tc := range []struct{ dest, transport, want string }{
		{"192.0.2.50:5060", "udp", "sip:192.0.2.50:5060;transport=udp"},
		{"proxy.example.net", "tcp", "sip:proxy.example.net;transport=tcp"},
		{"", "udp", "sip:carrier.example.net;transport=udp"},
		{"", "", ""},
		{"[2001:db8::1]:5060", "UDP", "sip:[2001:db8::1]:5060;transport=udp"},
	} {
		if got := drachtiofront.NextHop(ruri, tc.dest, tc.transport); got != tc.want {
			t.Errorf("NextHop(%q, %q) = %q, want %q", tc.dest, tc.transport, got, tc.want)
		}
	}
}

func startFront(t *testing.T, ctl int, sipPort int) (*drachtiofront.Front, *drachtiostub.Server) {
	t.Helper()
	stub := drachtiostub.Start(t, drachtiostub.Options{Control: fmt.Sprintf("127.0.0.1:%d", ctl), Secret: "s",
		SIP: []drachtiostub.Listen{{Transport: "udp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)},
			{Transport: "tcp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)}}, TxnTimeout: 2 * time.Second})
	h := sipfront.HandlerFunc(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	})
	f, err := drachtiofront.New(drachtiofront.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ctl), Secret: "s"}, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-f.Ready()
	return f, stub
}

// startSippUAS runs a sipp UAS scenario on udp port and waits until it
// listens (the port can no longer be bound).
func startSippUAS(t *testing.T, scenario string, port int) <-chan error {
	t.Helper()
	bin := testenv.Sipp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-sf", filepath.Join(testenv.ScenarioDir(t), scenario),
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error")
	cmd.Dir = t.TempDir()
	errc := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { errc <- cmd.Wait(); cancel() }()
	t.Cleanup(func() { cancel() })
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return errc
		}
		pc.Close()
		if i > 500 {
			t.Fatal("sipp UAS never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDo_RegisterWithDigestRetry sends a REGISTER through drachtio to a
// sipp UAS that challenges then accepts, retrying by hand as regbot does:
// same Call-ID, the From tag the server generated, CSeq + 1.
func TestDo_RegisterWithDigestRetry(t *testing.T) {
	f, stub := startFront(t, 19620, 16620)
	sippDone := startSippUAS(t, "uas-auth-register.xml", 16621)

	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "sip.jambonz.org"})
	req.AppendHeader(sip.NewHeader("From", "<sip:foo@sip.jambonz.org>"))
	req.AppendHeader(sip.NewHeader("To", "<sip:foo@sip.jambonz.org>"))
	req.AppendHeader(sip.NewHeader("Call-ID", "gw-sid-1"))
	req.AppendHeader(sip.NewHeader("CSeq", "1 REGISTER"))
	req.AppendHeader(sip.NewHeader("Contact", "<sip:foo@127.0.0.1:16620;transport=udp>;expires=3600"))
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := sipfront.OutboundRequest{Msg: req, Destination: "127.0.0.1:16621", Transport: "udp"}
	res, err := f.Do(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("first answer %d, want 401", res.StatusCode)
	}
	tag, _ := res.From().Params.Get("tag")
	if tag == "" || res.CallID().Value() != "gw-sid-1" || res.CSeq().SeqNo != 1 {
		t.Fatalf("401 lacks what the retry needs: %s", res)
	}
	if res.Source() != "127.0.0.1:16621" {
		t.Errorf("response source %q", res.Source())
	}

	retry := req.Clone()
	retry.ReplaceHeader(sip.NewHeader("From", "<sip:foo@sip.jambonz.org>;tag="+tag))
	retry.ReplaceHeader(sip.NewHeader("CSeq", fmt.Sprintf("%d REGISTER", res.CSeq().SeqNo+1)))
	retry.AppendHeader(sip.NewHeader("Authorization", authorization(t, res.GetHeader("WWW-Authenticate").Value(), "foo", "bar", "sip:sip.jambonz.org")))
	out.Msg = retry
	res2, err := f.Do(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if res2.StatusCode != 200 {
		t.Fatalf("retry answered %d", res2.StatusCode)
	}
	if err := <-sippDone; err != nil {
		t.Fatalf("sipp UAS: %v", err)
	}
	sent := stub.Sent()
	if len(sent) != 2 {
		t.Fatalf("%d requests sent", len(sent))
	}
	m, _ := sip.ParseMessage([]byte(sent[1]))
	second := m.(*sip.Request)
	tag2, _ := second.From().Params.Get("tag")
	if second.CallID().Value() != "gw-sid-1" || tag2 != tag || second.CSeq().SeqNo != 2 || second.GetHeader("Authorization") == nil {
		t.Errorf("retried REGISTER:\n%s", sent[1])
	}
}

// TestDo_StackTimeoutAndTransportFailure: no answer gives the stack's 408,
// a refused TCP connection its 503, both as responses.
func TestDo_StackTimeoutAndTransportFailure(t *testing.T) {
	f, _ := startFront(t, 19621, 16622)
	for _, tc := range []struct {
		transport string
		want      int
	}{{"udp", 408}, {"tcp", 503}} {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 16623})
		req.AppendHeader(sip.NewHeader("Content-Length", "0"))
		res, err := f.Do(context.Background(), sipfront.OutboundRequest{Msg: req, Destination: "127.0.0.1:16623", Transport: tc.transport})
		if err != nil {
			t.Fatalf("%s: %v", tc.transport, err)
		}
		if res.StatusCode != tc.want || res.CallID() == nil {
			t.Errorf("%s: %d, want %d", tc.transport, res.StatusCode, tc.want)
		}
	}
}

// authorization answers a challenge the way srf does (protocol doc 6.3).
func authorization(t *testing.T, challenge, user, password, uri string) string {
	t.Helper()
	params := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(challenge, "Digest "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[strings.ToLower(k)] = strings.Trim(v, `"`)
	}
	c := &digest.Credentials{Username: user, Realm: params["realm"], Nonce: params["nonce"], URI: uri, QOP: params["qop"]}
	if c.QOP != "" {
		c.NC, c.CNonce = "00000001", "0a4f113b"
	}
	resp, err := digest.Response(c, "REGISTER", password)
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf(`Digest username="%s",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=MD5`, user, c.Realm, c.Nonce, uri, resp)
	if c.QOP != "" {
		s += fmt.Sprintf(`,qop=%s,nc=%s,cnonce="%s"`, c.QOP, c.NC, c.CNonce)
	}
	return s
}
