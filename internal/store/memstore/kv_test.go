package memstore_test

import (
	"path/filepath"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/kvtest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

func TestKVContract(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kvtest.KV {
		s, err := memstore.Open(memstore.Options{Path: filepath.Join(t.TempDir(), "state")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
