package cached

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// benchClients answers every lookup with a client shaped as the REGISTER
// benchmark's (bench/register/gen.go): username u000001..., a 9-character
// password encrypted as the api-server stores it (86 characters).
type benchClients struct{ countingDir }

func (*benchClients) Client(_ context.Context, _, username string) (*registrar.Client, error) {
	return &registrar.Client{Username: username, Active: true,
		Password: `{"iv":"4f1c2d3e4f5061728394a5b6c7d8e9f0","content":"0a1b2c3d4e5f60718293a4b5c6d7e8f9"}`}, nil
}

// BenchmarkClientCacheHeap reports the heap a cached client costs, with
// 100,000 clients, 100 per account as in the benchmark's memory run, and
// spread over more accounts (one op = the whole fill; the figure is
// heap-bytes/client).
func BenchmarkClientCacheHeap(b *testing.B) {
	for _, perAccount := range []int{100, 10, 2} {
		b.Run(fmt.Sprint(perAccount, "-per-account"), func(b *testing.B) {
			const clients = 100_000
			sids := make([]string, clients/perAccount)
			users := make([]string, clients)
			for i := range sids {
				sids[i] = fmt.Sprintf("b2000000-0000-4000-8000-%012d", i)
			}
			for i := range users {
				users[i] = fmt.Sprintf("u%06d", i+1)
			}
			ctx := context.Background()
			var perClient float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				d := New(&benchClients{}, 5*time.Second, clients).WithStale(time.Hour)
				for i, u := range users {
					if _, err := d.Client(ctx, sids[i/perAccount], u); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perClient = float64(after.HeapAlloc-before.HeapAlloc) / clients
				runtime.KeepAlive(d)
			}
			b.ReportMetric(perClient, "heap-bytes/client")
		})
	}
}

// BenchmarkClientHit is one lookup answered from the cache.
func BenchmarkClientHit(b *testing.B) {
	ctx := context.Background()
	d := New(&benchClients{}, time.Hour, 100_000)
	if _, err := d.Client(ctx, "b2000000-0000-4000-8000-000000000001", "u000001"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if c, err := d.Client(ctx, "b2000000-0000-4000-8000-000000000001", "u000001"); err != nil || c == nil {
			b.Fatal(c, err)
		}
	}
}
