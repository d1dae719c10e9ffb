package native

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/tlsfile"
)

// Certificate holds the tls/wss listeners' certificate and swaps it on
// Reload, so a renewed certificate (SIGHUP) applies to new handshakes
// without closing established connections.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads a PEM certificate chain and key.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads the files; on error the previous certificate stays.
func (c *Certificate) Reload() error {
	if c == nil {
		return errors.New("native: no TLS certificate configured")
	}
	kp, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("native: loading TLS certificate %s: %w", c.certFile, err)
	}
	c.cur.Store(&kp)
	return nil
}

// ServerConfig is the server-side TLS configuration of the listeners.
func (c *Certificate) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// ClientConfig is the TLS configuration of outbound connections (carriers
// reached over TLS): the system roots plus the PEM bundle caFile (none when
// ""), and cert, when not nil, offered to carriers that ask for a client
// certificate. The server name checked is the carrier's host name, or its
// IP for IP literals.
func ClientConfig(caFile string, cert *Certificate) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if err := tlsfile.AddCAFile(pool, caFile); err != nil {
			return nil, fmt.Errorf("native: %w", err)
		}
		conf.RootCAs = pool
	}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert.cur.Load(), nil
		}
	}
	return conf, nil
}
