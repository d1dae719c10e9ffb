package tlsfile

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddCAFile_Errors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AddCAFile(x509.NewCertPool(), notPEM); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("not PEM: err = %v", err)
	}
	if err := AddCAFile(x509.NewCertPool(), filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "reading CA bundle") {
		t.Errorf("missing: err = %v", err)
	}
}
