package events

import (
	"encoding/json"
	"testing"
)

// BenchmarkEventJSON compares encoding/json (what the service used before:
// the event, then the record kept for its expiry) with encode, on a
// register event as a registration through the native front publishes it
// (docs/performance.md records the figures).
func BenchmarkEventJSON(b *testing.B) {
	e := sample()[0]
	e.UserAgent = "sipp"
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			raw, err := json.Marshal(&e)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(record{Expiry: e.BindingExpiry, Event: raw}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonwire", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = encode(&e)
		}
	})
}
