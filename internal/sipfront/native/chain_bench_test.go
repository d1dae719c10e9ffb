package native

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// captured is the socket of the benchmark: it keeps the last answer.
type captured struct{ last []byte }

func (c *captured) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.last = b
	return len(b), nil
}

const benchRegister = "REGISTER sip:demo.localhost SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:%d;branch=z9hG4bK-bench-%d-%d;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:demo@demo.localhost>;tag=bench%d\r\n" +
	"To: <sip:demo@demo.localhost>\r\n" +
	"Call-ID: bench-%d@192.0.2.10\r\n" +
	"CSeq: %d REGISTER\r\n" +
	"Contact: <sip:demo@192.0.2.10:%d>\r\n" +
	"User-Agent: bench\r\n" +
	"Expires: 3600\r\n" +
	"%s" +
	"Content-Length: 0\r\n\r\n"

// BenchmarkRegisterChain is one full registration (REGISTER, 401 challenge,
// REGISTER with credentials, 200) through everything the stateless UDP path
// runs: parse, answer cache, serving loop, the registrar chain with the
// embedded store, the file directory and the service's logger at info, the response
// built and serialised. The client's side (writing the requests, the digest)
// is left out of the timing. docs/performance.md records its figures.
func BenchmarkRegisterChain(b *testing.B) {
	log := logging.New(io.Discard, "info") // as in production
	store, err := memstore.Open(memstore.Options{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := filedir.Demo()
	if err != nil {
		b.Fatal(err)
	}
	reg := registrar.New(registrar.Deps{
		Nonces:    nonce.New("bench-secret", 300*time.Second, 0),
		Store:     store,
		Directory: dir,
		Webhook:   auth.NewWebhook(time.Second, "bench", nil, log),
		Clients:   auth.NewClients(dir, nil, log),
		Log:       log,
	})
	mux := sipfront.NewMux()
	mux.Handle("REGISTER", reg)
	f, err := New(Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, Log: log}, mux, mux.Methods())
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sock := &captured{}
	run := func(raw []byte, port int) []byte {
		src := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), uint16(port))
		j, ok := f.parseFast(raw, src, sock)
		if !ok {
			b.Fatal("not taken by the fast path")
		}
		if st, _ := f.answers.begin(j.key); st != answerNew {
			b.Fatalf("request seen before (%d)", st)
		}
		f.serveFast(j)
		return sock.last
	}
	parse := sip.NewParser()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		port := 1024 + i%60000
		first := fmt.Appendf(nil, benchRegister, port, i, 1, i, i, 1, port, "")
		b.StartTimer()
		ans := run(first, port)
		b.StopTimer()
		msg, err := parse.ParseSIP(ans)
		if err != nil {
			b.Fatal(err)
		}
		res := msg.(*sip.Response)
		if res.StatusCode != 401 {
			b.Fatalf("first REGISTER: %d", res.StatusCode)
		}
		ch, err := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
		if err != nil {
			b.Fatal(err)
		}
		authz, err := ch.Authorize("REGISTER", "sip:demo.localhost", filedir.DemoUser, filedir.DemoPassword, 1)
		if err != nil {
			b.Fatal(err)
		}
		second := fmt.Appendf(nil, benchRegister, port, i, 2, i, i, 2, port, "Authorization: "+authz+"\r\n")
		b.StartTimer()
		ans = run(second, port)
		b.StopTimer()
		if !bytes.HasPrefix(ans, []byte("SIP/2.0 200 ")) {
			b.Fatalf("second REGISTER: %q", bytes.SplitN(ans, []byte("\r\n"), 2)[0])
		}
		b.StartTimer()
	}
}
