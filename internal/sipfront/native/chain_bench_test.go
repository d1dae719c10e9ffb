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

// chain is the registrar behind the stateless path, as the benchmarks run it.
func chain(b *testing.B) (func(raw []byte, port int) []byte, func()) {
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
	return run, func() { f.Close() }
}

// BenchmarkRegisterChain is one full registration (REGISTER, 401 challenge,
// REGISTER with credentials, 200) through everything the stateless UDP path
// runs: parse, answer cache, serving loop, the registrar chain with the
// embedded store, the file directory and the service's logger at info, the response
// built and serialised. The client's side (writing the requests, the digest)
// is left out of the timing. docs/performance.md records its figures.
func BenchmarkRegisterChain(b *testing.B) {
	run, done := chain(b)
	defer done()
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

// BenchmarkRefreshChain is one cached refresh: a REGISTER of a registered
// Contact from the same source, without credentials, answered 200 from the
// stored binding (stage cache) through the same path as
// BenchmarkRegisterChain; the registration it refreshes is made before the
// timing starts. docs/performance.md records its figures.
func BenchmarkRefreshChain(b *testing.B) {
	run, done := chain(b)
	defer done()
	const port = 5062
	first := fmt.Appendf(nil, benchRegister, port, 0, 1, 0, 0, 1, port, "")
	msg, err := sip.NewParser().ParseSIP(run(first, port))
	if err != nil {
		b.Fatal(err)
	}
	ch, err := digest.ParseChallenge(msg.(*sip.Response).GetHeader("WWW-Authenticate").Value())
	if err != nil {
		b.Fatal(err)
	}
	authz, err := ch.Authorize("REGISTER", "sip:demo.localhost", filedir.DemoUser, filedir.DemoPassword, 1)
	if err != nil {
		b.Fatal(err)
	}
	second := fmt.Appendf(nil, benchRegister, port, 0, 2, 0, 0, 2, port, "Authorization: "+authz+"\r\n")
	if ans := run(second, port); !bytes.HasPrefix(ans, []byte("SIP/2.0 200 ")) {
		b.Fatalf("registration: %q", bytes.SplitN(ans, []byte("\r\n"), 2)[0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		seq := 3 + i
		refresh := fmt.Appendf(nil, benchRegister, port, 0, seq, 0, 0, seq, port, "")
		b.StartTimer()
		ans := run(refresh, port)
		if !bytes.HasPrefix(ans, []byte("SIP/2.0 200 ")) {
			b.Fatalf("refresh: %q", bytes.SplitN(ans, []byte("\r\n"), 2)[0])
		}
	}
}
