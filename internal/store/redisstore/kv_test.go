package redisstore_test

import (
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/kvtest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestKVContract(t *testing.T) {
	addr := testenv.Redis(t)
	kvtest.Run(t, func(t *testing.T) kvtest.KV {
		return redisstore.NewKV(testenv.RueidisClient(t, addr))
	})
}
