package redisstore_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

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
