package native

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
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
