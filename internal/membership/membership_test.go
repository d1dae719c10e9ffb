package membership

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// raw reaches a backend's keys directly, as another instance or an older
// sidecar would.
type raw interface {
	sadd(key, member string)
	hlen(key string) int
	exists(keys ...string) int
}

type redisRaw struct{ rdb *redis.Client }

func (r redisRaw) sadd(key, member string) { r.rdb.SAdd(context.Background(), key, member) }
func (r redisRaw) hlen(key string) int     { return int(r.rdb.HLen(context.Background(), key).Val()) }
func (r redisRaw) exists(keys ...string) int {
	return int(r.rdb.Exists(context.Background(), keys...).Val())
}

type memRaw struct{ kv *memstore.Store }

func (m memRaw) sadd(key, member string) {
	_ = m.kv.Update(func(tx *memstore.Tx) error { _, err := tx.SAdd(key, member); return err })
}
func (m memRaw) hlen(key string) int {
	h, _ := m.kv.HGetAll(context.Background(), key)
	return len(h)
}
func (m memRaw) exists(keys ...string) int {
	n, _ := m.kv.Exists(context.Background(), keys...)
	return n
}

// backends runs test on the sets of cluster on each backend (the Redis one
// needs the test Redis), with a clock the test moves. another returns one
// more instance sharing the sets, with its own clock.
func backends(t *testing.T, cluster string, expires time.Duration, clock *time.Time,
	test func(t *testing.T, s *Sets, r raw, another func(clock *time.Time) *Sets)) {
	open := map[string]func(t *testing.T) (backend, raw){
		"embedded": func(t *testing.T) (backend, raw) {
			kv, err := memstore.Open(memstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return memSets{kv}, memRaw{kv}
		},
		"redis": func(t *testing.T) (backend, raw) {
			rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
			t.Cleanup(func() { rdb.Close() })
			ctx := context.Background()
			clear := func() {
				keys, _ := rdb.Keys(ctx, cluster+":*").Result()
				if len(keys) > 0 {
					rdb.Del(ctx, keys...)
				}
			}
			clear()
			t.Cleanup(clear)
			return redisSets{testenv.RueidisClient(t, testenv.Redis(t))}, redisRaw{rdb}
		},
	}
	for _, name := range []string{"embedded", "redis"} {
		t.Run(name, func(t *testing.T) {
			start := *clock
			b, r := open[name](t)
			another := func(c *time.Time) *Sets {
				s := newSets(b, cluster, expires, slog.New(slog.NewTextHandler(io.Discard, nil)))
				s.now = func() time.Time { return *c }
				return s
			}
			test(t, another(clock), r, another)
			*clock = start // the next backend starts at the same time
		})
	}
}

func members(t *testing.T, s *Sets, set Set) []string {
	t.Helper()
	m, err := s.Members(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSets_AddAndRemoveReturnSetSize(t *testing.T) {
	now := time.Now()
	backends(t, "t-addremove", time.Minute, &now, func(t *testing.T, s *Sets, _ raw, _ func(*time.Time) *Sets) {
		ctx := context.Background()
		steps := []struct {
			add    bool
			member string
			want   int64
		}{
			{true, "10.0.0.1:5060", 1},
			{true, "10.0.0.1:5060", 1}, // repeated check-in
			{true, "10.0.0.2:5060", 2},
			{false, "10.0.0.1:5060", 1},
			{false, "10.0.0.9:5060", 1}, // unknown member
			{false, "10.0.0.2:5060", 0},
		}
		for i, st := range steps {
			op := s.Remove
			if st.add {
				op = s.Add
			}
			n, err := op(ctx, ActiveFS, st.member)
			if err != nil || n != st.want {
				t.Fatalf("step %d: got %d, %v; want %d", i, n, err, st.want)
			}
		}
	})
}

func TestSets_SweepExpiresOnlyMembersNobodyHeardFrom(t *testing.T) {
	now := time.Now()
	backends(t, "t-sweep", 10*time.Second, &now, func(t *testing.T, s *Sets, r raw, _ func(*time.Time) *Sets) {
		ctx := context.Background()
		if _, err := s.Add(ctx, ActiveFS, "10.0.0.1:5060"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(ctx, ActiveRTP, "10.0.0.5"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(ctx, FSServiceURL, "http://10.0.0.1:3000"); err != nil {
			t.Fatal(err)
		}
		now = now.Add(6 * time.Second)
		if _, err := s.Add(ctx, ActiveFS, "10.0.0.2:5060"); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Second) // 11 s after the first check-ins, 5 s after 10.0.0.2
		removed, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{
			"t-sweep:active-fs":      {"10.0.0.1:5060"},
			"t-sweep:active-rtp":     {"10.0.0.5"},
			"t-sweep:fs-service-url": {"http://10.0.0.1:3000"},
		}
		if !reflect.DeepEqual(removed, want) {
			t.Errorf("removed = %v, want %v", removed, want)
		}
		if got := members(t, s, ActiveFS); !reflect.DeepEqual(got, []string{"10.0.0.2:5060"}) {
			t.Errorf("active-fs = %v", got)
		}
		if n := r.hlen("t-sweep:active-fs:lastseen"); n != 1 {
			t.Errorf("lastseen hash has %d fields, want 1", n)
		}
	})
}

// A member left in Redis by an instance that is gone has no timestamp: it
// is watched from the first sweep on and removed one interval later.
func TestSets_SweepAdoptsMembersPresentAtStart(t *testing.T) {
	now := time.Now()
	backends(t, "t-adopt", 10*time.Second, &now, func(t *testing.T, s *Sets, r raw, _ func(*time.Time) *Sets) {
		ctx := context.Background()
		r.sadd("t-adopt:active-fs", "10.0.0.7:5060")
		r.sadd("t-adopt:active-rtp", "10.0.0.8")
		if removed, err := s.Sweep(ctx); err != nil || len(removed) != 0 {
			t.Fatalf("first sweep removed %v (%v), want nothing", removed, err)
		}
		now = now.Add(9 * time.Second)
		if removed, _ := s.Sweep(ctx); len(removed) != 0 {
			t.Fatalf("sweep within the interval removed %v", removed)
		}
		now = now.Add(2 * time.Second)
		if _, err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n := r.exists("t-adopt:active-fs", "t-adopt:active-rtp"); n != 0 {
			t.Errorf("adopted members not expired (%d keys left)", n)
		}
	})
}

// Two instances share the sets: instance A hears nothing from a feature
// server that keeps checking in at instance B; A's sweeps must keep it.
func TestSets_SweepKeepsMemberCheckingInAtAnotherInstance(t *testing.T) {
	clockA, clockB := time.Now(), time.Now()
	backends(t, "t-multi", 10*time.Second, &clockA, func(t *testing.T, a *Sets, _ raw, another func(*time.Time) *Sets) {
		clockB = clockA
		b := another(&clockB)
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			if _, err := b.Add(ctx, ActiveFS, "10.0.0.1:5060"); err != nil {
				t.Fatal(err)
			}
			clockA, clockB = clockA.Add(8*time.Second), clockB.Add(8*time.Second)
			if _, err := a.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if got := members(t, a, ActiveFS); len(got) != 1 {
				t.Fatalf("round %d: member removed by the other instance's sweep", i)
			}
		}
		clockA = clockA.Add(3 * time.Second) // B stops hearing from it: 11 s
		if _, err := a.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := members(t, a, ActiveFS); len(got) != 0 {
			t.Errorf("silent member kept: %v", got)
		}
	})
}

func TestSets_DrainRemovesOnlyThatIPsMembers(t *testing.T) {
	now := time.Now()
	backends(t, "t-drain", time.Minute, &now, func(t *testing.T, s *Sets, _ raw, _ func(*time.Time) *Sets) {
		ctx := context.Background()
		for _, m := range []string{"10.0.0.1:5060", "10.0.0.1:5070", "10.0.0.10:5060", "10.0.0.2:5060"} {
			if _, err := s.Add(ctx, ActiveFS, m); err != nil {
				t.Fatal(err)
			}
		}
		removed, err := s.Drain(ctx, netip.MustParseAddr("10.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(removed, ",") != "10.0.0.1:5060,10.0.0.1:5070" && strings.Join(removed, ",") != "10.0.0.1:5070,10.0.0.1:5060" {
			t.Errorf("removed = %v", removed)
		}
		if got := members(t, s, ActiveFS); !reflect.DeepEqual(got, []string{"10.0.0.10:5060", "10.0.0.2:5060"}) {
			t.Errorf("active-fs = %v", got)
		}
		if ok, _ := s.IsDrained(ctx, "10.0.0.1"); !ok {
			t.Error("10.0.0.1 not drained")
		}
		if ok, _ := s.IsDrained(ctx, "10.0.0.10"); ok {
			t.Error("10.0.0.10 drained")
		}
		if was, err := s.Undrain(ctx, netip.MustParseAddr("10.0.0.1")); err != nil || !was {
			t.Errorf("undrain = %v, %v", was, err)
		}
		if ok, _ := s.IsDrained(ctx, "10.0.0.1"); ok {
			t.Error("still drained after undrain")
		}
	})
}

func TestSets_RedisDownIsAnError(t *testing.T) {
	s := New(testenv.RueidisClient(t, "127.0.0.1:1"), "x", time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	if _, err := s.Add(ctx, ActiveFS, "10.0.0.1:5060"); err == nil {
		t.Error("Add: no error")
	}
	if _, err := s.IsDrained(ctx, "10.0.0.1"); err == nil {
		t.Error("IsDrained: no error")
	}
	if _, err := s.Sweep(ctx); err == nil {
		t.Error("Sweep: no error")
	}
}
