package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
)

// openGoRedisClient is the go-redis client the service used before it
// switched to rueidis (internal/redisconn until 2026-11-29): no retries,
// 8 KiB buffers, every command behind the breaker through a hook.
func openGoRedisClient(c config.Redis, probeEvery time.Duration, log *slog.Logger) (redis.UniversalClient, *breaker.Breaker) {
	const (
		noRetries   = -1
		oneDial     = 1
		noRetryWait = -1
		connBuffer  = 8 << 10
	)
	rdb := redis.NewClient(&redis.Options{
		Addr:                    c.Host + ":" + strconv.Itoa(c.Port),
		DialTimeout:             c.DialTimeout,
		ReadTimeout:             c.Timeout,
		WriteTimeout:            c.Timeout,
		MaxRetries:              noRetries,
		MinRetryBackoff:         noRetryWait,
		MaxRetryBackoff:         noRetryWait,
		DialerRetries:           oneDial,
		ReadBufferSize:          connBuffer,
		WriteBufferSize:         connBuffer,
		PipelineReadBufferSize:  connBuffer,
		PipelineWriteBufferSize: connBuffer,
	})
	b := breaker.New("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, breaker.Options{
		Interval: probeEvery,
		Timeout:  c.DialTimeout + c.Timeout,
		Outage:   goRedisOutage,
		Log:      log,
	})
	rdb.AddHook(gate{b})
	return rdb, b
}

// goRedisOutage: server answers, a closed client and pool waits are not outages.
func goRedisOutage(err error) bool {
	var reply redis.Error
	if errors.As(err, &reply) {
		return false
	}
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return false
	}
	return !errors.Is(err, redis.ErrClosed)
}

// gate is the go-redis hook that puts every command behind the breaker.
type gate struct{ b *breaker.Breaker }

func (g gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !breaker.IsProbe(ctx) {
			if err := g.b.Allow(); err != nil {
				return err
			}
		}
		return g.b.Observe(ctx, next(ctx, cmd))
	}
}

func (g gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !breaker.IsProbe(ctx) {
			if err := g.b.Allow(); err != nil {
				for _, cmd := range cmds {
					cmd.SetErr(err)
				}
				return err
			}
		}
		return g.b.Observe(ctx, next(ctx, cmds))
	}
}
