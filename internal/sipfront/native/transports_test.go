package native

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sipclient"
)

// seen records what the handler was given.
type seen struct {
	mu   sync.Mutex
	reqs []sipfront.Request
}

func (s *seen) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, *r)
	s.mu.Unlock()
	_ = w.Respond(ctx, &sipfront.Response{Code: 200})
}

func (s *seen) last(t *testing.T) sipfront.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("handler saw no request")
	}
	return s.reqs[len(s.reqs)-1]
}

func startTransports(t *testing.T, listen string, cert *Certificate, h sipfront.Handler) *Front {
	t.Helper()
	l, err := config.ParseListen(listen)
	if err != nil {
		t.Fatal(err)
	}
	return runFront(t, Options{Listen: l, TLS: cert}, h)
}

func TestFront_RegisterOverEveryTransport(t *testing.T) {
	c := testenv.SelfSignedCert(t, "")
	cert, err := LoadCertificate(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	h := &seen{}
	f := startTransports(t, "udp:127.0.0.1:16900,tcp:127.0.0.1:16900,tls:127.0.0.1:16901,ws:127.0.0.1:16902,wss:127.0.0.1:16903", cert, h)
	wantSBC := "udp/127.0.0.1:16900,tcp/127.0.0.1:16900,tls/127.0.0.1:16901,ws/127.0.0.1:16902,wss/127.0.0.1:16903"
	if got := f.SBCAddress(); got != wantSBC {
		t.Errorf("SBCAddress = %q, want %q", got, wantSBC)
	}
	for _, tc := range []struct{ transport, target string }{
		{"udp", "127.0.0.1:16900"},
		{"tcp", "127.0.0.1:16900"},
		{"tls", "127.0.0.1:16901"},
		{"ws", "127.0.0.1:16902"},
		{"wss", "127.0.0.1:16903"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cli, err := sipclient.New(&tls.Config{RootCAs: c.Pool})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := cli.Do(ctx, sipclient.Register{Transport: tc.transport, Target: tc.target,
				User: "alice", Realm: "example.com", Expires: 600})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			r := h.last(t)
			if r.Transport != tc.transport {
				t.Errorf("Transport = %q, want %q", r.Transport, tc.transport)
			}
			if r.SBCAddress != wantSBC {
				t.Errorf("request SBCAddress = %q", r.SBCAddress)
			}
			if tc.transport == "udp" {
				return
			}
			// The connection the client registered on stays in the stack's
			// pool, so requests towards the client reuse it.
			if !f.HasConnection(tc.transport, r.Source.String()) {
				t.Errorf("no %s connection kept to %s", tc.transport, r.Source)
			}
		})
	}
}

func TestFront_TLSAndWSSNeedACertificate(t *testing.T) {
	for _, listen := range []string{"tls:127.0.0.1:16904", "wss:127.0.0.1:16904"} {
		l, _ := config.ParseListen(listen)
		f, err := New(Options{Listen: l}, &seen{}, []string{"REGISTER"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Listen(context.Background()); err == nil {
			f.Close()
			t.Errorf("%s: Listen without a certificate succeeded", listen)
		}
	}
}

// serialOf returns the serial number of the certificate served at addr.
func serialOf(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestFront_ReloadSwapsTheCertificateForNewHandshakes(t *testing.T) {
	dir := t.TempDir()
	first := testenv.SelfSignedCert(t, dir)
	cert, err := LoadCertificate(first.CertFile, first.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	f := startTransports(t, "tls:127.0.0.1:16905", cert, &seen{})
	addr := netip.MustParseAddrPort("127.0.0.1:16905").String()
	if got := serialOf(t, addr); got != first.Serial.String() {
		t.Fatalf("serial %s, want %s", got, first.Serial)
	}
	second := testenv.SelfSignedCert(t, dir) // overwrites the files
	if err := f.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := serialOf(t, addr); got != second.Serial.String() {
		t.Errorf("after reload serial %s, want %s", got, second.Serial)
	}
	// A broken file keeps the previous certificate.
	if err := writeGarbage(second.CertFile); err != nil {
		t.Fatal(err)
	}
	if err := f.ReloadTLS(); err == nil {
		t.Error("reload of a broken certificate succeeded")
	}
	if got := serialOf(t, addr); got != second.Serial.String() {
		t.Errorf("after failed reload serial %s, want %s", got, second.Serial)
	}
}

func writeGarbage(path string) error { return os.WriteFile(path, []byte("not a certificate"), 0o600) }
