package store

import (
	"encoding/json"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// BenchmarkBindingJSON compares encoding/json (what the stores used before)
// with AppendBinding and DecodeBinding on the binding a registration
// through the native front writes (docs/performance.md records the
// figures).
func BenchmarkBindingJSON(b *testing.B) {
	bd := bindings()[0]
	raw, _ := json.Marshal(bd)
	str := string(raw)
	b.Run("encode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := json.Marshal(bd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/jsonwire", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = EncodeBinding(&bd)
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var v registrar.Binding
			if err := json.Unmarshal(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/jsonwire-bytes", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := DecodeBinding(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/jsonwire-string", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := DecodeBinding(str); err != nil {
				b.Fatal(err)
			}
		}
	})
}
