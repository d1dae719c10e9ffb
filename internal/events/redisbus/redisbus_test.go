package redisbus_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/redisbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
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

// The subscription survives a restart of Redis: it subscribes again once
// the server is back (through the service's client and its breaker), and
// the events published then arrive.
func TestSubscribeAgainAfterRedisRestart(t *testing.T) {
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	rc, br, err := redisconn.Open(config.Redis{Host: "127.0.0.1", Port: rp.Port(), DialTimeout: time.Second, Timeout: time.Second},
		10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go br.Run(ctx)
	b := redisbus.New(rc, "c3")
	sub, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subscribers := func() int64 {
		n, _ := rp.Client().PubSubNumSub(ctx, redisbus.Channel("c3")).Result()
		return n[redisbus.Channel("c3")]
	}
	if n := subscribers(); n != 1 {
		t.Fatalf("subscribers before the restart: %d", n)
	}
	rp.Stop()
	rp.Start()
	deadline := time.Now().Add(30 * time.Second)
	for subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("not subscribed again within 30 s of the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !br.Up() { // the breaker closes with the probe
		if time.Now().After(deadline) {
			t.Fatal("breaker still open 30 s after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Deliver(ctx, [][]byte{[]byte(`{"type":"register"}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(<-sub); got != `{"type":"register"}` {
		t.Fatalf("received %s", got)
	}
}
