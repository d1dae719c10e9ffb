// Package kvtest is the contract test suite of store.KV, the key-value
// operations of regbot, the gateway pinger, nonce claims and bans, run
// against Redis (redisstore.KV) and the embedded store (memstore.Store) so
// that standalone mode behaves like a cluster.
package kvtest

import (
	"context"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// KV is the interface under test; regbot, the pinger, nonce claims and
// bans use subsets of it.
type KV = store.KV

// The consumers' subsets, checked at compile time.
var (
	_ regbot.KV          = KV(nil)
	_ pinger.Blacklist   = KV(nil)
	_ nonce.SharedClaims = KV(nil)
	_ store.BanKV        = KV(nil)
)

// Open returns a store for one test. The suite's keys are unique per test,
// so a shared Redis needs no flush.
type Open func(t *testing.T) KV

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		test func(t *testing.T, kv KV, key string)
	}{
		{"SetNXStoresOnlyWhenAbsentWithTTL", func(t *testing.T, kv KV, key string) {
			if ok, err := kv.SetNX(ctx, key, "a", time.Minute); !ok || err != nil {
				t.Fatalf("first SetNX = %v, %v; want true", ok, err)
			}
			if ok, err := kv.SetNX(ctx, key, "b", time.Minute); ok || err != nil {
				t.Fatalf("second SetNX = %v, %v; want false", ok, err)
			}
			wantValue(t, kv, key, "a")
			wantTTL(t, kv, key, time.Minute)
		}},
		{"ExpireIfEqualOnlyWithTheSameValue", func(t *testing.T, kv KV, key string) {
			mustSetNX(t, kv, key, "mine", time.Minute)
			if ok, err := kv.ExpireIfEqual(ctx, key, "theirs", time.Hour); ok || err != nil {
				t.Fatalf("ExpireIfEqual(other value) = %v, %v; want false", ok, err)
			}
			wantTTL(t, kv, key, time.Minute)
			if ok, err := kv.ExpireIfEqual(ctx, key, "mine", time.Hour); !ok || err != nil {
				t.Fatalf("ExpireIfEqual(own value) = %v, %v; want true", ok, err)
			}
			if d, _ := kv.TTL(ctx, key); d <= time.Minute || d > time.Hour {
				t.Fatalf("TTL after renewal = %v, want (1m, 1h]", d)
			}
		}},
		{"ExpireIfEqualOfAnAbsentKeyIsFalse", func(t *testing.T, kv KV, key string) {
			if ok, err := kv.ExpireIfEqual(ctx, key, "mine", time.Minute); ok || err != nil {
				t.Fatalf("ExpireIfEqual = %v, %v; want false", ok, err)
			}
			if n, _ := kv.Exists(ctx, key); n != 0 {
				t.Fatal("ExpireIfEqual created the key")
			}
		}},
		{"DelIfEqualOnlyWithTheSameValue", func(t *testing.T, kv KV, key string) {
			mustSetNX(t, kv, key, "mine", time.Minute)
			if ok, err := kv.DelIfEqual(ctx, key, "theirs"); ok || err != nil {
				t.Fatalf("DelIfEqual(other value) = %v, %v; want false", ok, err)
			}
			wantValue(t, kv, key, "mine")
			if ok, err := kv.DelIfEqual(ctx, key, "mine"); !ok || err != nil {
				t.Fatalf("DelIfEqual(own value) = %v, %v; want true", ok, err)
			}
			if n, _ := kv.Exists(ctx, key); n != 0 {
				t.Fatal("key still exists")
			}
			if ok, err := kv.DelIfEqual(ctx, key, "mine"); ok || err != nil {
				t.Fatalf("DelIfEqual(absent) = %v, %v; want false, nil", ok, err)
			}
		}},
		{"ClaimedKeyIsFreeAfterItsTTL", func(t *testing.T, kv KV, key string) {
			mustSetNX(t, kv, key, "gone-soon", 200*time.Millisecond)
			// Poll instead of sleeping a fixed time: only the outcome is asserted.
			eventually(t, func() bool { n, _ := kv.Exists(ctx, key); return n == 0 })
			if ok, err := kv.SetNX(ctx, key, "next", time.Minute); !ok || err != nil {
				t.Fatalf("SetNX after expiry = %v, %v; want true", ok, err)
			}
		}},
		{"HSetTTLSetsFieldsAndTheKeyTTL", func(t *testing.T, kv KV, key string) {
			if err := kv.HSetTTL(ctx, key, map[string]string{"c1": "100"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := kv.HSetTTL(ctx, key, map[string]string{"c2": "200"}, 2*time.Hour); err != nil {
				t.Fatal(err)
			}
			h, err := kv.HGetAll(ctx, key)
			if err != nil || len(h) != 2 || h["c1"] != "100" || h["c2"] != "200" {
				t.Fatalf("HGetAll = %v, %v", h, err)
			}
			if d, _ := kv.TTL(ctx, key); d <= time.Hour || d > 2*time.Hour {
				t.Fatalf("TTL = %v, want the last one set (2h)", d)
			}
		}},
		{"HDelRemovesFieldsAndTheKeyWithTheLast", func(t *testing.T, kv KV, key string) {
			if err := kv.HSetTTL(ctx, key, map[string]string{"c1": "1", "c2": "2"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := kv.HDel(ctx, key, "c1"); err != nil {
				t.Fatal(err)
			}
			if h, _ := kv.HGetAll(ctx, key); len(h) != 1 || h["c2"] != "2" {
				t.Fatalf("HGetAll after HDel c1 = %v", h)
			}
			if err := kv.HDel(ctx, key, "c2", "absent"); err != nil {
				t.Fatal(err)
			}
			if n, _ := kv.Exists(ctx, key); n != 0 {
				t.Fatal("empty hash still exists")
			}
			if err := kv.HDel(ctx, key+":never", "c1"); err != nil {
				t.Fatalf("HDel of an absent key: %v", err)
			}
		}},
		{"SetReplacesValueAndTTL", func(t *testing.T, kv KV, key string) {
			mustSetNX(t, kv, key, "a", time.Hour)
			if err := kv.Set(ctx, key, "b", time.Minute); err != nil {
				t.Fatal(err)
			}
			wantValue(t, kv, key, "b")
			wantTTL(t, kv, key, time.Minute)
		}},
		{"IncrWithinCountsInTheFirstWindow", func(t *testing.T, kv KV, key string) {
			for want := 1; want <= 3; want++ {
				if n, err := kv.IncrWithin(ctx, key, time.Minute); n != want || err != nil {
					t.Fatalf("IncrWithin = %d, %v; want %d", n, err, want)
				}
			}
			if _, err := kv.IncrWithin(ctx, key, time.Hour); err != nil {
				t.Fatal(err)
			}
			wantTTL(t, kv, key, time.Minute) // the window starts with the first count
		}},
		{"DelCountsExistingKeys", func(t *testing.T, kv KV, key string) {
			mustSetNX(t, kv, key+":a", "1", time.Minute)
			mustSetNX(t, kv, key+":b", "1", time.Minute)
			if n, err := kv.Exists(ctx, key+":a", key+":b", key+":c"); n != 2 || err != nil {
				t.Fatalf("Exists = %d, %v; want 2", n, err)
			}
			if n, err := kv.Del(ctx, key+":a", key+":b", key+":c"); n != 2 || err != nil {
				t.Fatalf("Del = %d, %v; want 2", n, err)
			}
			if n, _ := kv.Exists(ctx, key+":a", key+":b"); n != 0 {
				t.Fatalf("Exists after Del = %d", n)
			}
		}},
		{"AbsentKeyReadsAsAbsent", func(t *testing.T, kv KV, key string) {
			if v, ok, err := kv.Get(ctx, key); ok || v != "" || err != nil {
				t.Fatalf("Get = %q, %v, %v", v, ok, err)
			}
			if d, err := kv.TTL(ctx, key); d != -2 || err != nil {
				t.Fatalf("TTL = %v, %v; want -2", d, err)
			}
			if h, err := kv.HGetAll(ctx, key); len(h) != 0 || err != nil {
				t.Fatalf("HGetAll = %v, %v", h, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := open(t)
			key := "kvtest:" + t.Name()
			cleanup := func() { _, _ = kv.Del(ctx, key, key+":a", key+":b", key+":c", key+":never") }
			cleanup()
			t.Cleanup(cleanup)
			tc.test(t, kv, key)
		})
	}
}

func mustSetNX(t *testing.T, kv KV, key, value string, ttl time.Duration) {
	t.Helper()
	if ok, err := kv.SetNX(context.Background(), key, value, ttl); !ok || err != nil {
		t.Fatalf("SetNX %s = %v, %v", key, ok, err)
	}
}

func wantValue(t *testing.T, kv KV, key, want string) {
	t.Helper()
	if v, ok, err := kv.Get(context.Background(), key); !ok || v != want || err != nil {
		t.Fatalf("Get %s = %q, %v, %v; want %q", key, v, ok, err, want)
	}
}

// wantTTL checks a TTL in (0, max]: time passes between set and read.
func wantTTL(t *testing.T, kv KV, key string, max time.Duration) {
	t.Helper()
	if d, err := kv.TTL(context.Background(), key); d <= 0 || d > max || err != nil {
		t.Fatalf("TTL %s = %v, %v; want (0, %v]", key, d, err, max)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition still false after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
