package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// bindScript is internal/store/redisstore's bind script itself: the
// server's cost of the binding write must be the same for both clients.
const bindScript = redisstore.BindSource

// registerer runs the Redis commands of one full registration.
type registerer interface {
	register(ctx context.Context, u *user, nonceKey string, expiry int64) error
	// close ends the client and its breaker's recovery loop.
	close()
}

// client is one configuration under test.
type client struct {
	name string
	what string
	open func(cfg config.Redis) (registerer, error)
}

func clients() []client {
	ru := func(name, what string, tune func(*rueidis.ClientOption)) client {
		return client{name: name, what: what, open: func(cfg config.Redis) (registerer, error) {
			return openRueidis(cfg, tune)
		}}
	}
	return []client{
		{name: "goredis", what: "go-redis v9 as the service used it before rueidis (breaker hook, pool of 10 per core, no retries)", open: openGoRedis},
		ru("rueidis", "rueidis defaults (auto-pipelining, 2 connections at GOMAXPROCS=2), cache and retries off", nil),
		ru("rueidis-1conn", "as rueidis, PipelineMultiplex -1: every command on one connection", func(o *rueidis.ClientOption) { o.PipelineMultiplex = -1 }),
		ru("rueidis-flush20us", "as rueidis, MaxFlushDelay 20µs (fewer, larger writes)", func(o *rueidis.ClientOption) { o.MaxFlushDelay = 20 * time.Microsecond }),
		ru("rueidis-pool", "as rueidis, DisableAutoPipelining: a pooled connection per call, as go-redis", func(o *rueidis.ClientOption) { o.DisableAutoPipelining = true }),
	}
}

// goRedis issues the commands exactly as internal/store/redisstore and
// internal/nonce do: Binding (GET), KV.SetNX, BindingAndExists (pipelined
// GET + EXISTS) and BindWith (pipelined EVALSHA + SET + PUBLISH, EVAL on
// NOSCRIPT).
type goRedis struct {
	rdb  redis.UniversalClient
	bind *redis.Script
	stop context.CancelFunc
}

func openGoRedis(cfg config.Redis) (registerer, error) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	rdb, b := openGoRedisClient(cfg, 250*time.Millisecond, log)
	ctx, stop := context.WithCancel(context.Background())
	go b.Run(ctx)
	return &goRedis{rdb: rdb, bind: redis.NewScript(bindScript), stop: stop}, nil
}

func (g *goRedis) close() { g.stop(); _ = g.rdb.Close() }

func (g *goRedis) register(ctx context.Context, u *user, nonceKey string, expiry int64) error {
	// First REGISTER (answered 401): the cached binding.
	if _, err := g.rdb.Get(ctx, u.userKey).Bytes(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("get: %w", err)
	}
	// Authenticated REGISTER: nonce-count claim ...
	won, err := g.rdb.SetNX(ctx, nonceKey, "1", nonceTTL).Result()
	if err != nil {
		return fmt.Errorf("set nx: %w", err)
	}
	if !won {
		return errors.New("nonce claimed twice")
	}
	// ... binding and AoR ban in one round trip ...
	var get *redis.StringCmd
	var exists *redis.IntCmd
	_, err = g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, u.userKey)
		exists = p.Exists(ctx, u.banKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("get+exists: %w", err)
	}
	if exists.Val() > 0 {
		return errors.New("banned")
	}
	if _, err := get.Bytes(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("get: %w", err)
	}
	// ... and the binding write with its event, one round trip.
	keys := []string{u.userKey, activeUsers, u.realmKey}
	args := []any{u.payload, bindingTTL.Milliseconds(), expiry, u.userKey}
	var run *redis.Cmd
	var cmds []redis.Cmder
	_, _ = g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		run = g.bind.EvalSha(ctx, p, keys, args...)
		cmds = append(cmds, p.Set(ctx, u.recordKey, u.record, recordTTL))
		cmds = append(cmds, p.Publish(ctx, channel, u.event))
		return nil
	})
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	err = run.Err()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = g.bind.Eval(ctx, g.rdb, keys, args...).Err()
	}
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// ruClient issues the same commands with rueidis, behind the same breaker
// (Allow before, Observe after each call, as redisconn's go-redis hook).
type ruClient struct {
	c       rueidis.Client
	b       *breaker.Breaker
	sha     string
	bindSrc string
	stop    context.CancelFunc
}

func openRueidis(cfg config.Redis, tune func(*rueidis.ClientOption)) (registerer, error) {
	opt := rueidis.ClientOption{
		InitAddress: []string{net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))},
		Dialer:      net.Dialer{Timeout: cfg.DialTimeout},
		// As the service's go-redis: no retries, a dead server costs one timeout.
		ConnWriteTimeout: cfg.Timeout,
		DisableRetry:     true,
		// Client-side caching off: a binding must be read as another
		// instance just wrote it, and each AoR is read about twice an hour.
		DisableCache: true,
	}
	if tune != nil {
		tune(&opt)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(bindScript))
	b := breaker.New("redis", func(ctx context.Context) error {
		return c.Do(ctx, c.B().Ping().Build()).Error()
	}, breaker.Options{Interval: 250 * time.Millisecond, Timeout: cfg.DialTimeout + cfg.Timeout, Outage: ruOutage,
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	ctx, stop := context.WithCancel(context.Background())
	go b.Run(ctx)
	return &ruClient{c: c, b: b, sha: hex.EncodeToString(sum[:]), bindSrc: bindScript, stop: stop}, nil
}

// ruOutage is redisconn.Outage for rueidis: answers of the server (nil,
// WRONGTYPE, NOSCRIPT ...) are not outages.
func ruOutage(err error) bool {
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	return !errors.Is(err, rueidis.ErrClosing)
}

func (r *ruClient) close() { r.stop(); r.c.Close() }

func (r *ruClient) do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if err := r.b.Allow(); err != nil {
		return rueidis.NewErrorResult(err)
	}
	res := r.c.Do(ctx, cmd)
	_ = r.b.Observe(ctx, res.NonRedisError())
	return res
}

func (r *ruClient) doMulti(ctx context.Context, cmds ...rueidis.Completed) ([]rueidis.RedisResult, error) {
	if err := r.b.Allow(); err != nil {
		return nil, err
	}
	res := r.c.DoMulti(ctx, cmds...)
	for _, x := range res {
		if err := x.NonRedisError(); err != nil {
			return nil, r.b.Observe(ctx, err)
		}
	}
	return res, nil
}

func (r *ruClient) register(ctx context.Context, u *user, nonceKey string, expiry int64) error {
	c := r.c
	if _, err := r.do(ctx, c.B().Get().Key(u.userKey).Build()).AsBytes(); err != nil && !rueidis.IsRedisNil(err) {
		return fmt.Errorf("get: %w", err)
	}
	err := r.do(ctx, c.B().Set().Key(nonceKey).Value("1").Nx().Px(nonceTTL).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return errors.New("nonce claimed twice")
	}
	if err != nil {
		return fmt.Errorf("set nx: %w", err)
	}
	res, err := r.doMulti(ctx,
		c.B().Get().Key(u.userKey).Build(),
		c.B().Exists().Key(u.banKey).Build())
	if err != nil {
		return fmt.Errorf("get+exists: %w", err)
	}
	if n, err := res[1].AsInt64(); err != nil || n > 0 {
		return fmt.Errorf("exists: banned or %v", err)
	}
	if _, err := res[0].AsBytes(); err != nil && !rueidis.IsRedisNil(err) {
		return fmt.Errorf("get: %w", err)
	}
	ttl := strconv.FormatInt(bindingTTL.Milliseconds(), 10)
	exp := strconv.FormatInt(expiry, 10)
	payload := rueidis.BinaryString(u.payload)
	res, err = r.doMulti(ctx,
		c.B().Evalsha().Sha1(r.sha).Numkeys(3).Key(u.userKey, activeUsers, u.realmKey).Arg(payload, ttl, exp, u.userKey).Build(),
		c.B().Set().Key(u.recordKey).Value(rueidis.BinaryString(u.record)).Px(recordTTL).Build(),
		c.B().Publish().Channel(channel).Message(rueidis.BinaryString(u.event)).Build())
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	for _, x := range res[1:] {
		if err := x.Error(); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	err = res[0].Error()
	if e, ok := rueidis.IsRedisErr(err); ok && e.IsNoScript() {
		err = r.do(ctx, c.B().Eval().Script(r.bindSrc).Numkeys(3).Key(u.userKey, activeUsers, u.realmKey).Arg(payload, ttl, exp, u.userKey).Build()).Error()
	}
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}
