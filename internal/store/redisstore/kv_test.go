package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/kvtest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestKVContract(t *testing.T) {
	addr := testenv.Redis(t)
	kvtest.Run(t, func(t *testing.T) kvtest.KV {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		return redisstore.NewKV(rdb)
	})
}
