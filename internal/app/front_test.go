package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestDrachtioTLS_FromConfiguration(t *testing.T) {
	cert := testenv.SelfSignedCert(t, "")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		d       config.Drachtio
		wantNil bool
		wantCA  bool
		wantErr string
	}{
		{name: "off: plain TCP", d: config.Drachtio{Host: "10.0.0.5"}, wantNil: true},
		{name: "on, system roots", d: config.Drachtio{Host: "drachtio.local", TLS: true}},
		{name: "on with a CA bundle", d: config.Drachtio{Host: "127.0.0.1", TLS: true, TLSCAFile: cert.CertFile}, wantCA: true},
		{name: "CA file missing", d: config.Drachtio{Host: "h", TLS: true, TLSCAFile: "/nonexistent/ca.pem"}, wantErr: "DRACHTIO_TLS_CA_FILE"},
		{name: "CA file without PEM", d: config.Drachtio{Host: "h", TLS: true, TLSCAFile: notPEM}, wantErr: "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := drachtioTLS(tc.d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c == nil) != tc.wantNil {
				t.Fatalf("config = %v, want nil: %v", c, tc.wantNil)
			}
			if c == nil {
				return
			}
			if c.ServerName != tc.d.Host || (c.RootCAs != nil) != tc.wantCA {
				t.Errorf("ServerName %q RootCAs set %v", c.ServerName, c.RootCAs != nil)
			}
		})
	}
}

func TestDrachtioPublic_PublicHostportsOnly(t *testing.T) {
	got := drachtioPublic(drachtiofront.PublicAddresses("udp/10.0.0.5:5060,tcp/10.0.0.5:5060,udp/203.0.113.10:5060,tls/203.0.113.10:5061,wss/203.0.113.10:8443,udp/[2001:db8::1]:5060"))
	if len(got) != 1 || got[0].IP.String() != "203.0.113.10" || got[0].Port != 5060 || got[0].TLSPort != 5061 || got[0].WSSPort != 8443 {
		t.Errorf("got %v, want 203.0.113.10 5060/5061/8443 only", got)
	}
}
