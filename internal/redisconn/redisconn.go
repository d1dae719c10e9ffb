// Package redisconn opens the Redis client described by the configuration
// (plain, Sentinel, TLS), shared by every Redis-backed component, behind a
// circuit breaker (internal/breaker): no retries in the request path, and
// while Redis is down every command fails at once with
// breaker.ErrUnavailable instead of dialling (docs/reliability.md).
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/tlsfile"
)

// Open returns a client for c and the breaker its commands go through. It
// does not connect yet; the breaker's Run must run for it to recover from
// an outage, probing every probeEvery.
func Open(c config.Redis, probeEvery time.Duration, log *slog.Logger) (redis.UniversalClient, *breaker.Breaker, error) {
	tlsConf, err := tlsConfig(c)
	if err != nil {
		return nil, nil, err
	}
	// go-redis writes its own diagnostics (dial failures, Sentinel master
	// switches) through a process-wide logger; keep them in the JSON log.
	redis.SetLogger(slogAdapter{log})
	rdb := newClient(c, tlsConf, 0)
	b := breaker.New("redis", probe(c, tlsConf, rdb), breaker.Options{
		Interval: probeEvery,
		Timeout:  c.DialTimeout + c.Timeout,
		Outage:   Outage,
		Log:      log,
	})
	rdb.AddHook(gate{b})
	return rdb, b, nil
}

// Outage tells a failure of the connection (refused, reset, timed out,
// no master known to the sentinels ...) from an answer of the server
// (redis.Nil, WRONGTYPE, NOSCRIPT, READONLY ...): only the first opens the
// breaker. A closed client is shutdown, not an outage. Neither is a wait
// for a pooled connection that timed out (ErrPoolTimeout, ErrPoolExhausted):
// that is a burst of our own calls, all connections busy; it fails the call
// that waited, not every call for a probe interval. A server that stopped
// answering still opens the breaker, through the pooled calls' read
// timeouts, which come first.
func Outage(err error) bool {
	var reply redis.Error
	if errors.As(err, &reply) {
		return false
	}
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return false
	}
	return !errors.Is(err, redis.ErrClosed)
}

// connBuffer is the size of each connection's read and write buffer.
const connBuffer = 8 << 10

// newClient builds the client; poolSize 0 is go-redis' default.
func newClient(c config.Redis, tlsConf *tls.Config, poolSize int) redis.UniversalClient {
	// No retries anywhere (commands, dials): the phone retransmits, and a
	// dead server must cost one short timeout, once (then the breaker opens).
	const (
		noRetries   = -1
		oneDial     = 1
		noRetryWait = -1
	)
	opts := &redis.UniversalOptions{
		Addrs:           []string{c.Host + ":" + strconv.Itoa(c.Port)},
		Username:        c.Username,
		Password:        c.Password,
		TLSConfig:       tlsConf,
		DialTimeout:     c.DialTimeout,
		ReadTimeout:     c.Timeout,
		WriteTimeout:    c.Timeout,
		MaxRetries:      noRetries,
		MinRetryBackoff: noRetryWait,
		MaxRetryBackoff: noRetryWait,
		DialerRetries:   oneDial,
		PoolSize:        poolSize,
		// Our commands and answers are a few hundred bytes (a binding, a
		// pipeline of three); longer ones are read and written past the
		// buffer. go-redis' defaults (32 KiB per direction, 128 KiB on the
		// pipeline pool's connections) held ~4 MB with the default pools
		// (docs/performance.md, "Memory (issue 15)").
		ReadBufferSize:          connBuffer,
		WriteBufferSize:         connBuffer,
		PipelineReadBufferSize:  connBuffer,
		PipelineWriteBufferSize: connBuffer,
	}
	if len(c.Sentinels) > 0 {
		// A master name makes it a failover client with Addrs as sentinels.
		opts.Addrs, opts.MasterName = c.Sentinels, c.SentinelMasterName
		opts.SentinelUsername, opts.SentinelPassword = c.SentinelUsername, c.SentinelPassword
	}
	return redis.NewUniversalClient(opts)
}

// probe checks Redis on a fresh one-connection client first: go-redis
// counts failed dials per pool, and once they reach the pool size the pool
// refuses to dial for a second at a time, so probing through the shared
// pool would delay recovery. Only when the fresh client answers is the
// shared one pinged (bypassing the gate), so that closing the breaker
// means the clients the service uses work.
func probe(c config.Redis, tlsConf *tls.Config, shared redis.UniversalClient) breaker.Probe {
	return func(ctx context.Context) error {
		fresh := newClient(c, tlsConf, 1)
		err := fresh.Ping(ctx).Err()
		_ = fresh.Close()
		if err != nil {
			return err
		}
		return shared.Ping(ctx).Err()
	}
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

func tlsConfig(c config.Redis) (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pool := x509.NewCertPool()
		if err := tlsfile.AddCAFile(pool, c.TLSCAFile); err != nil {
			return nil, fmt.Errorf("redis: JAMBONES_REDIS_TLS_CA_FILE: %w", err)
		}
		tlsConf.RootCAs = pool
	}
	if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis: loading client certificate (JAMBONES_REDIS_TLS_CERT_FILE, JAMBONES_REDIS_TLS_KEY_FILE): %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	return tlsConf, nil
}

// slogAdapter sends go-redis' own log lines to slog at debug level: they
// repeat per dial attempt while Redis is down, and the breaker already logs
// the outage and the recovery once each.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.log.DebugContext(ctx, "redis: client", "detail", fmt.Sprintf(format, v...))
}
