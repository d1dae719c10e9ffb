// Package tlsfile loads the PEM CA bundles named by configuration
// (JAMBONES_REDIS_TLS_CA_FILE, DRACHTIO_TLS_CA_FILE, SIP_TLS_CA_FILE) the same
// way everywhere.
package tlsfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// AddCAFile adds the certificates of the PEM file path to pool; a file
// without any is an error (a wrong path to a key or a DER file would
// otherwise trust nothing, silently).
func AddCAFile(pool *x509.CertPool, path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return nil
}
