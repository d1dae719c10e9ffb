package redisstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/storetest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// emptyRedis is a client of the test server at addr, its database flushed.
func emptyRedis(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	return rdb
}

func TestStoreContract(t *testing.T) {
	addr := testenv.Redis(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		rdb := emptyRedis(t, addr)
		return withTTL{redisstore.New(testenv.RueidisClient(t, rdb.Options().Addr)), redisstore.NewKV(testenv.RueidisClient(t, rdb.Options().Addr))}
	})
}

// withTTL lets the contract suite read key TTLs.
type withTTL struct {
	*redisstore.Store
	*redisstore.KV
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	rdb := emptyRedis(t, testenv.Redis(t))
	s := redisstore.New(testenv.RueidisClient(t, rdb.Options().Addr))
	ban, claim := "c:ban:aor:john@example.com", "c:nonce:abc:1"
	l := registrar.Lookup{AoR: "john@example.com", BanKey: ban, ClaimKey: claim, ClaimTTL: time.Minute}
	res, err := s.Lookup(ctx, l)
	if err != nil || res.Binding != nil || res.Banned || !res.Claimed || res.BindingErr != nil {
		t.Fatalf("empty store: %+v, %v", res, err)
	}
	if ttl := rdb.PTTL(ctx, claim).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("claim key TTL = %v, want up to 1m", ttl)
	}
	want := registrar.Binding{Contact: "sip:john@192.0.2.1", ExpiryTime: time.Now().Add(time.Hour).UnixMilli(), CSeq: 7}
	if err := s.Bind(ctx, "john@example.com", want, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, ban, "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = s.Lookup(ctx, l)
	if err != nil || res.Binding == nil || *res.Binding != want || !res.Banned || res.Claimed {
		t.Fatalf("got %+v, %v; want the binding, banned, claim refused (taken)", res, err)
	}
	// Neither key: a plain read.
	res, err = s.Lookup(ctx, registrar.Lookup{AoR: "john@example.com"})
	if err != nil || res.Binding == nil || res.Banned || res.Claimed {
		t.Fatalf("plain lookup: %+v, %v", res, err)
	}
	// A binding that cannot be decoded does not hide the ban and the claim.
	if err := rdb.Set(ctx, store.UserKey("bad@example.com"), "{", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = s.Lookup(ctx, registrar.Lookup{AoR: "bad@example.com", BanKey: ban, ClaimKey: "c:nonce:abc:2", ClaimTTL: time.Minute})
	if err != nil || res.BindingErr == nil || res.Binding != nil || !res.Banned || !res.Claimed {
		t.Fatalf("invalid JSON: %+v, %v; want BindingErr with the ban and the claim read", res, err)
	}
}

// roundTrips counts the requests a client sends: one per command, one per
// pipeline or transaction.
type roundTrips struct {
	rueidis.Client
	n int
}

func (r *roundTrips) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r.n++
	return r.Client.Do(ctx, cmd)
}

func (r *roundTrips) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	r.n++
	return r.Client.DoMulti(ctx, cmds...)
}

// Each registration store operation of the REGISTER path is one round trip
// (once the scripts are loaded: a first EVALSHA may be answered NOSCRIPT).
func TestOneRoundTripEach(t *testing.T) {
	ctx := context.Background()
	rdb := emptyRedis(t, testenv.Redis(t))
	rt := &roundTrips{Client: testenv.RueidisClient(t, rdb.Options().Addr)}
	s := redisstore.New(rt)
	b := registrar.Binding{Contact: "sip:john@192.0.2.1", ExpiryTime: time.Now().Add(time.Hour).UnixMilli()}
	claimN := 0
	ops := []struct {
		name string
		run  func() error
	}{
		{"Bind", func() error { return s.Bind(ctx, "john@example.com", b, time.Hour) }},
		{"Lookup", func() error {
			_, err := s.Lookup(ctx, registrar.Lookup{AoR: "john@example.com", BanKey: "c:ban:aor:john@example.com",
				ClaimKey: "c:nonce:x:" + strconv.Itoa(claimN), ClaimTTL: time.Minute})
			claimN++
			return err
		}},
		{"Binding", func() error { _, err := s.Binding(ctx, "john@example.com"); return err }},
		{"Unbind", func() error { return s.Unbind(ctx, "john@example.com") }},
	}
	// The first pass warms the connection pool up (the first pipeline may
	// dial its own connection); the second is counted.
	for _, op := range ops {
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
	}
	for _, op := range ops {
		rt.n = 0
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if rt.n != 1 {
			t.Errorf("%s took %d round trips, want 1", op.name, rt.n)
		}
	}
}

// A binding write carrying its event (record SET and PUBLISH) is still one
// round trip, and the event is published and kept; so is a removal.
func TestBindWithEventOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	rdb := emptyRedis(t, testenv.Redis(t))
	sub := rdb.Subscribe(ctx, "c:registration-events")
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := sub.Channel()
	rt := &roundTrips{Client: testenv.RueidisClient(t, rdb.Options().Addr)}
	s := redisstore.New(rt)
	b := registrar.Binding{Contact: "sip:john@192.0.2.1", ExpiryTime: time.Now().Add(time.Hour).UnixMilli()}
	bindEv := func(n int) *events.Inline {
		return &events.Inline{Channel: "c:registration-events", Publish: []byte("register-" + strconv.Itoa(n)),
			KeepKey: "c:registration-events:binding:john@example.com", Keep: []byte("rec-" + strconv.Itoa(n)), KeepTTL: time.Hour}
	}
	unbindEv := func(n int) *events.Inline {
		return &events.Inline{Channel: "c:registration-events", Publish: []byte("unregister-" + strconv.Itoa(n))}
	}
	// The first pass loads the scripts (NOSCRIPT then EVAL) and warms the
	// pool up; the second is counted.
	for n := range 2 {
		rt.n = 0
		ev := bindEv(n)
		if err := s.BindWith(ctx, "john@example.com", b, time.Hour, ev); err != nil || ev.Err != nil {
			t.Fatalf("BindWith: %v, event: %v", err, ev.Err)
		}
		if n == 1 && rt.n != 1 {
			t.Errorf("BindWith took %d round trips, want 1", rt.n)
		}
		if got := string((<-msgs).Payload); got != "register-"+strconv.Itoa(n) {
			t.Errorf("published %q", got)
		}
		if got, _ := s.Binding(ctx, "john@example.com"); got == nil || got.Contact != b.Contact {
			t.Errorf("binding %+v", got)
		}
		if rec := rdb.Get(ctx, "c:registration-events:binding:john@example.com").Val(); rec != "rec-"+strconv.Itoa(n) {
			t.Errorf("record %q", rec)
		}
		rt.n = 0
		ev = unbindEv(n)
		if err := s.UnbindWith(ctx, "john@example.com", ev); err != nil || ev.Err != nil {
			t.Fatalf("UnbindWith: %v, event: %v", err, ev.Err)
		}
		if n == 1 && rt.n != 1 {
			t.Errorf("UnbindWith took %d round trips, want 1", rt.n)
		}
		if got := string((<-msgs).Payload); got != "unregister-"+strconv.Itoa(n) {
			t.Errorf("published %q", got)
		}
		if got, _ := s.Binding(ctx, "john@example.com"); got != nil {
			t.Errorf("binding still there: %+v", got)
		}
	}
}
