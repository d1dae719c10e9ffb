package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// BenchmarkCountRealm compares the device count of one realm with N users
// registered cluster-wide: ours (per-realm sorted set) against the
// original's ZSCAN of active-user with MATCH *<realm>. Ours must not grow
// with N.
//
//	go test -run '^$' -bench CountRealm ./internal/store/redisstore
func BenchmarkCountRealm(b *testing.B) {
	addr := testenv.Redis(b)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: 3})
	b.Cleanup(func() { rdb.FlushDB(ctx); rdb.Close() })
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, SelectDB: 3, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	s := New(rc)
	for _, n := range []int{1_000, 10_000, 100_000} {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		expiry := float64(time.Now().Add(time.Hour).UnixMilli())
		// 10 devices in the counted realm, the rest spread over 1,000 others.
		p := rdb.Pipeline()
		for i := 0; i < n; i++ {
			realm := "realm" + strconv.Itoa(i%1000) + ".example.com"
			if i < 10 {
				realm = "counted.example.com"
			}
			key := store.UserKey("u" + strconv.Itoa(i) + "@" + realm)
			z := redis.Z{Score: expiry, Member: key}
			p.ZAdd(ctx, store.ActiveUsers, z)
			p.ZAdd(ctx, store.RealmKey(realm), z)
			if i%5000 == 4999 {
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("per-realm-set/N=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if c, err := s.CountRealm(ctx, "counted.example.com"); err != nil || c != 10 {
					b.Fatalf("count %d, %v", c, err)
				}
			}
		})
		b.Run(fmt.Sprintf("original-zscan/N=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if c := zscanCount(ctx, b, rdb, "counted.example.com"); c != 10 {
					b.Fatalf("count %d", c)
				}
			}
		})
	}
}

// zscanCount is the original's getCountOfUsers(realm).
func zscanCount(ctx context.Context, b *testing.B, rdb *redis.Client, realm string) int {
	var cursor uint64
	count := 0
	for {
		keys, next, err := rdb.ZScan(ctx, store.ActiveUsers, cursor, "*"+realm, 1000).Result()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(keys); i += 2 {
			if strings.HasSuffix(keys[i], realm) {
				count++
			}
		}
		if next == 0 {
			return count
		}
		cursor = next
	}
}
