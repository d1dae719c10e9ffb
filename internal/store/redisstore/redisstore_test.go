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
