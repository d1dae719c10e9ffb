package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sbcaddr"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
)

// drachtioTLS is the TLS configuration of the control connection, nil when
// DRACHTIO_TLS is off. The certificate is verified against DRACHTIO_HOST.
func drachtioTLS(d config.Drachtio) (*tls.Config, error) {
	if !d.TLS {
		return nil, nil
	}
	c := &tls.Config{ServerName: d.Host, MinVersion: tls.VersionTLS12}
	if d.TLSCAFile != "" {
		pem, err := os.ReadFile(d.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("drachtio: DRACHTIO_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("drachtio: DRACHTIO_TLS_CA_FILE %s holds no PEM certificate", d.TLSCAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// drachtioPublic converts the front's public addresses (from drachtio's
// hostports) into sbc_addresses rows, public IPs only.
func drachtioPublic(pas []drachtiofront.PublicAddress) []sbcaddr.Address {
	addrs := make([]sbcaddr.Address, 0, len(pas))
	for _, pa := range pas {
		ip, err := netip.ParseAddr(pa.IPv4)
		if err != nil {
			continue
		}
		addrs = append(addrs, sbcaddr.Address{IP: ip, Port: pa.Port, TLSPort: pa.TLSPort, WSSPort: pa.WSSPort})
	}
	return sbcaddr.PublicOnly(addrs)
}
