package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/storetest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestStoreContract(t *testing.T) {
	addr := testenv.Redis(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("flush redis: %v", err)
		}
		return withTTL{redisstore.New(rdb), redisstore.NewKV(rdb)}
	})
}

// withTTL lets the contract suite read key TTLs.
type withTTL struct {
	*redisstore.Store
	*redisstore.KV
}

func TestBindingAndExists(t *testing.T) {
	addr := testenv.Redis(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	s := redisstore.New(rdb)
	b, found, err := s.BindingAndExists(ctx, "john@example.com", "c:ban:aor:john@example.com")
	if err != nil || b != nil || found {
		t.Fatalf("empty store: %v, %v, %v", b, found, err)
	}
	want := registrar.Binding{Contact: "sip:john@192.0.2.1", ExpiryTime: time.Now().Add(time.Hour).UnixMilli(), CSeq: 7}
	if err := s.Bind(ctx, "john@example.com", want, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "c:ban:aor:john@example.com", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	b, found, err = s.BindingAndExists(ctx, "john@example.com", "c:ban:aor:john@example.com")
	if err != nil || b == nil || *b != want || !found {
		t.Fatalf("got %+v, %v, %v; want %+v, true", b, found, err, want)
	}
	if err := rdb.Set(ctx, store.UserKey("bad@example.com"), "{", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.BindingAndExists(ctx, "bad@example.com", "k"); err == nil {
		t.Fatal("invalid JSON read without error")
	}
}

// roundTrips counts the requests a client sends: one per command, one per
// pipeline or transaction.
type roundTrips struct{ n int }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n++; return next(ctx, cmd) }
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n++; return next(ctx, cmds) }
}

// Each registration store operation of the REGISTER path is one round trip
// (once the scripts are loaded: a first EVALSHA may be answered NOSCRIPT).
func TestOneRoundTripEach(t *testing.T) {
	addr := testenv.Redis(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	s := redisstore.New(rdb)
	b := registrar.Binding{Contact: "sip:john@192.0.2.1", ExpiryTime: time.Now().Add(time.Hour).UnixMilli()}
	rt := &roundTrips{}
	rdb.AddHook(rt)
	ops := []struct {
		name string
		run  func() error
	}{
		{"Bind", func() error { return s.Bind(ctx, "john@example.com", b, time.Hour) }},
		{"BindingAndExists", func() error {
			_, _, err := s.BindingAndExists(ctx, "john@example.com", "c:ban:aor:john@example.com")
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
