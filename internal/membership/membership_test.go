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

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// newSets returns sets in a cluster of their own on the test Redis, with a
// clock the test moves.
func newSets(t *testing.T, cluster string, expires time.Duration, clock *time.Time) (*Sets, *redis.Client) {
	t.Helper()
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
	s := New(rdb, cluster, expires, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = func() time.Time { return *clock }
	return s, rdb
}

func members(t *testing.T, s *Sets, set string) []string {
	t.Helper()
	m, err := s.Members(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSets_AddAndRemoveReturnSetSize(t *testing.T) {
	now := time.Now()
	s, _ := newSets(t, "t-addremove", time.Minute, &now)
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
}

func TestSets_SweepExpiresOnlyMembersNobodyHeardFrom(t *testing.T) {
	now := time.Now()
	s, rdb := newSets(t, "t-sweep", 10*time.Second, &now)
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
	if n, _ := rdb.HLen(ctx, "t-sweep:active-fs:lastseen").Result(); n != 1 {
		t.Errorf("lastseen hash has %d fields, want 1", n)
	}
}

// A member left in Redis by an instance that is gone has no timestamp: it
// is watched from the first sweep on and removed one interval later.
func TestSets_SweepAdoptsMembersPresentAtStart(t *testing.T) {
	now := time.Now()
	s, rdb := newSets(t, "t-adopt", 10*time.Second, &now)
	ctx := context.Background()
	rdb.SAdd(ctx, "t-adopt:active-fs", "10.0.0.7:5060")
	rdb.SAdd(ctx, "t-adopt:active-rtp", "10.0.0.8")
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
	if n, _ := rdb.Exists(ctx, "t-adopt:active-fs", "t-adopt:active-rtp").Result(); n != 0 {
		t.Errorf("adopted members not expired (%d keys left)", n)
	}
}

// Two instances share the sets: instance A hears nothing from a feature
// server that keeps checking in at instance B; A's sweeps must keep it.
func TestSets_SweepKeepsMemberCheckingInAtAnotherInstance(t *testing.T) {
	clockA, clockB := time.Now(), time.Now()
	a, _ := newSets(t, "t-multi", 10*time.Second, &clockA)
	b := New(a.rdb, "t-multi", 10*time.Second, a.log)
	b.now = func() time.Time { return clockB }
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
}

func TestSets_DrainRemovesOnlyThatIPsMembers(t *testing.T) {
	now := time.Now()
	s, _ := newSets(t, "t-drain", time.Minute, &now)
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
}

func TestSets_RedisDownIsAnError(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	s := New(rdb, "x", time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
