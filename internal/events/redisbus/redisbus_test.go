package redisbus_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/redisbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func client(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return rdb
}

// TestClaimExpiredOnceAcrossInstances: four backends sweeping the same
// active-user at once claim every expired member exactly once, leave the
// live ones, and return the record kept for each.
func TestClaimExpiredOnceAcrossInstances(t *testing.T) {
	rdb := client(t)
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	const expired, live = 300, 20
	setup := redisbus.New(testenv.RueidisClient(t, rdb.Options().Addr), "c1")
	var keep []events.Keep
	for i := range expired + live {
		aor := "u" + strconv.Itoa(i) + "@x.org"
		score := now.UnixMilli() - 1000 + int64(i)
		if i >= expired {
			score = now.UnixMilli() + 60_000
		}
		rdb.ZAdd(ctx, "active-user", redis.Z{Score: float64(score), Member: "user:" + aor})
		keep = append(keep, events.Keep{AoR: aor, Value: []byte("rec-" + aor), TTL: time.Minute})
	}
	if err := setup.Deliver(ctx, nil, keep); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		b := redisbus.New(testenv.RueidisClient(t, rdb.Options().Addr), "c1")
		wg.Go(func() {
			for {
				claimed, _, err := b.ClaimExpired(ctx, now, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(claimed) == 0 {
					return
				}
				mu.Lock()
				for _, c := range claimed {
					seen[c.AoR]++
					if string(c.Value) != "rec-"+c.AoR {
						t.Errorf("record of %s = %q", c.AoR, c.Value)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != expired {
		t.Fatalf("claimed %d distinct members, want %d", len(seen), expired)
	}
	for aor, n := range seen {
		if n != 1 {
			t.Fatalf("%s claimed %d times", aor, n)
		}
	}
	_, remaining, err := setup.ClaimExpired(ctx, now, 10)
	if err != nil || remaining != live {
		t.Fatalf("remaining = %d, %v; want %d", remaining, err, live)
	}
}

func TestPublishReachesSubscribers(t *testing.T) {
	rdb := client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := redisbus.New(testenv.RueidisClient(t, rdb.Options().Addr), "c2")
	sub, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := redisbus.New(testenv.RueidisClient(t, rdb.Options().Addr), "other").Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Deliver(ctx, [][]byte{[]byte(`{"type":"register"}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(<-sub); got != `{"type":"register"}` {
		t.Fatalf("received %s", got)
	}
	select {
	case m := <-other:
		t.Fatalf("another cluster's channel received %s", m)
	default:
	}
	if n, _ := rdb.PubSubNumSub(ctx, redisbus.Channel("c2")).Result(); n[redisbus.Channel("c2")] != 1 {
		t.Fatalf("subscribers of %s: %v", redisbus.Channel("c2"), n)
	}
}
