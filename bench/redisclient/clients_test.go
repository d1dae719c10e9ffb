package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// state is what one registration leaves in Redis, TTLs rounded to the
// minute (the clients run a moment apart).
type state struct {
	binding, record           string
	score, realmScore         float64
	bindingTTL, recordTTL     time.Duration
	realmTTLSet, nonceClaimed bool
}

// The comparison is only fair if every client sends the same commands:
// each must leave the same keys, values, scores and TTLs as go-redis does,
// and refuse a banned AoR.
func TestClientsWriteTheSameState(t *testing.T) {
	addr := testenv.Redis(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := config.Redis{Host: host, Port: p, DialTimeout: time.Second, Timeout: 2 * time.Second}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	u := makeUsers(1)[0]
	u.userKey = strings.Replace(u.userKey, "u0@", "clients-test@", 1)
	u.banKey += ":clients-test"
	u.recordKey += ":clients-test"
	// In the future whenever the test runs: the bind script sets the realm
	// index to expire then.
	expiry := time.Now().Add(bindingTTL).UnixMilli()
	clean := func() {
		rdb.Del(ctx, u.userKey, u.banKey, u.recordKey)
		rdb.ZRem(ctx, activeUsers, u.userKey)
		rdb.ZRem(ctx, u.realmKey, u.userKey)
	}
	t.Cleanup(clean)

	var want state
	for i, c := range clients() {
		clean()
		rc, err := c.open(cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		nonce := "bench:nonce:clients-test:" + c.name + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)
		err = rc.register(ctx, &u, nonce, expiry)
		if err != nil {
			rc.close()
			t.Fatalf("%s: register: %v", c.name, err)
		}
		got := state{
			binding:      rdb.Get(ctx, u.userKey).Val(),
			record:       rdb.Get(ctx, u.recordKey).Val(),
			score:        rdb.ZScore(ctx, activeUsers, u.userKey).Val(),
			realmScore:   rdb.ZScore(ctx, u.realmKey, u.userKey).Val(),
			bindingTTL:   rdb.PTTL(ctx, u.userKey).Val().Round(time.Minute),
			recordTTL:    rdb.PTTL(ctx, u.recordKey).Val().Round(time.Minute),
			realmTTLSet:  rdb.PTTL(ctx, u.realmKey).Val() > 0,
			nonceClaimed: rdb.Exists(ctx, nonce).Val() == 1,
		}
		if got.binding != string(u.payload) || got.record != string(u.record) || got.score != float64(expiry) || got.realmScore != float64(expiry) ||
			got.bindingTTL != bindingTTL || got.recordTTL != recordTTL || !got.realmTTLSet || !got.nonceClaimed {
			t.Errorf("%s left %+v", c.name, got)
		}
		if i == 0 {
			want = got
		} else if got != want {
			t.Errorf("%s left %+v, go-redis %+v", c.name, got, want)
		}
		if err := rc.register(ctx, &u, nonce, expiry); err == nil {
			t.Errorf("%s: a nonce claimed twice was accepted", c.name)
		}
		rdb.Set(ctx, u.banKey, "1", time.Minute)
		if err := rc.register(ctx, &u, nonce+"b", expiry); err == nil {
			t.Errorf("%s: a banned AoR was registered", c.name)
		}
		rc.close()
	}
}
