// Package redisconn opens the Redis client described by the configuration
// (plain, Sentinel, TLS), shared by every Redis-backed component, behind a
// circuit breaker (internal/breaker): no retries in the request path, and
// while Redis is down every command fails at once with
// breaker.ErrUnavailable instead of dialling (docs/reliability.md).
//
// The client is rueidis (auto-pipelining: commands of concurrent requests
// share one write and one read; docs/performance.md, "rueidis switch
// (service)").
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/tlsfile"
)

// Open returns a client for c and the breaker its commands go through. It
// does not fail when Redis is unreachable: the first command opens the
// breaker, and the breaker's Run, which must run, closes it again when a
// probe (every probeEvery) answers.
func Open(c config.Redis, probeEvery time.Duration, log *slog.Logger) (*Client, *breaker.Breaker, error) {
	opt, err := options(c)
	if err != nil {
		return nil, nil, err
	}
	cl := &Client{opt: opt}
	cl.b = breaker.New("redis", cl.probe, breaker.Options{
		Interval: probeEvery,
		Timeout:  c.DialTimeout + c.Timeout,
		Outage:   Outage,
		Log:      log,
	})
	if _, err := cl.client(); err != nil {
		// Not fatal: the sentinels (or the server, with TLS) may come
		// later; the probe connects then.
		log.Debug("redis: client not connected yet", "err", err)
	}
	return cl, cl.b, nil
}

// Outage tells a failure of the connection (refused, reset, timed out, no
// master known to the sentinels ...) from an answer of the server (nil,
// WRONGTYPE, NOSCRIPT, READONLY ...): only the first opens the breaker. A
// closed client is shutdown, not an outage.
func Outage(err error) bool {
	var reply *rueidis.RedisError // a server error reply, or nil
	if errors.As(err, &reply) {
		return false
	}
	return !errors.Is(err, rueidis.ErrClosing) && !errors.Is(err, ErrClosed)
}

// ErrClosed is the error of calls made after Close.
var ErrClosed = errors.New("redis: client closed")

// Connection buffers and the pipeline ring. Our commands and answers are a
// few hundred bytes (a binding, a pipeline of three); longer ones are read
// and written past the buffer. rueidis' defaults (512 KiB per direction and
// a ring of 1,024 slots per connection) would hold megabytes for nothing
// (docs/performance.md, "Memory (issue 15)").
const (
	connBuffer = 8 << 10
	// ringScale 8: 256 commands in flight per connection before callers
	// wait for a slot.
	ringScale = 8
)

// options builds rueidis' options from the configuration.
func options(c config.Redis) (rueidis.ClientOption, error) {
	tlsConf, err := tlsConfig(c)
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	opt := rueidis.ClientOption{
		InitAddress: []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port))},
		Username:    c.Username,
		Password:    c.Password,
		TLSConfig:   tlsConf,
		Dialer:      net.Dialer{Timeout: c.DialTimeout},
		// No retries anywhere: the phone retransmits, and a dead server
		// must cost one short timeout, once (then the breaker opens).
		// rueidis has no per-command read timeout: a server that stops
		// answering is noticed by this deadline (and its keep-alive PINGs)
		// or by the caller's context.
		ConnWriteTimeout: c.Timeout,
		DisableRetry:     true,
		// Client-side caching off: a binding must be read as another
		// instance just wrote it, and each AoR is read about twice an hour.
		DisableCache:        true,
		ReadBufferEachConn:  connBuffer,
		WriteBufferEachConn: connBuffer,
		RingScaleEachConn:   ringScale,
		// One connection for every command: as cheap as two or cheaper at
		// every measured load, and half the buffers (docs/performance.md).
		PipelineMultiplex: -1,
		// Not a cluster: no CLUSTER SLOTS at start, and a client even
		// when the server is not reachable yet.
		ForceSingleClient: true,
		// No CLIENT SETINFO at each connection.
		ClientSetInfo: rueidis.DisableClientSetInfo,
	}
	if len(c.Sentinels) > 0 {
		opt.InitAddress = c.Sentinels
		opt.ForceSingleClient = false
		opt.Sentinel = rueidis.SentinelOption{
			Dialer:    opt.Dialer,
			TLSConfig: tlsConf,
			MasterSet: c.SentinelMasterName,
			Username:  c.SentinelUsername,
			Password:  c.SentinelPassword,
		}
	}
	return opt, nil
}

// Client is a rueidis.Client whose calls go through the breaker: Allow
// before (refused at once while Redis is down), Observe after (a failed
// connection opens it). Calls with a probe's context (breaker.WithProbe)
// pass while it is open. Receive runs on a dedicated connection of its own.
//
// The rueidis client is made on first need: with Sentinel, rueidis asks
// the sentinels for the master when it is made, and they may not answer
// at start-up.
type Client struct {
	opt rueidis.ClientOption
	b   *breaker.Breaker

	// cur is the rueidis client once made; mu serialises making it.
	cur    atomic.Pointer[rueidis.Client]
	mu     sync.Mutex
	closed bool
}

var _ rueidis.Client = (*Client)(nil)

// client returns the rueidis client, making it when there is none yet.
func (c *Client) client() (rueidis.Client, error) {
	if rc := c.cur.Load(); rc != nil {
		return *rc, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if rc := c.cur.Load(); rc != nil {
		return *rc, nil
	}
	rc, err := rueidis.NewClient(c.opt)
	if rc != nil {
		// With ForceSingleClient the client is returned even when the
		// first dial failed; it dials again on the next command.
		c.cur.Store(&rc)
	}
	if err != nil {
		return rc, fmt.Errorf("redis: connecting: %w", err)
	}
	return rc, nil
}

// probe pings through the client the service uses (bypassing the breaker),
// so that closing the breaker means that client works.
func (c *Client) probe(ctx context.Context) error {
	return c.Ping(ctx)
}

// Ping sends PING through the breaker.
func (c *Client) Ping(ctx context.Context) error {
	rc, err := c.gate(ctx)
	if err != nil {
		return err
	}
	return c.b.Observe(ctx, rc.Do(ctx, rc.B().Ping().Build()).Error())
}

// gate returns the client when the breaker lets ctx's call through.
func (c *Client) gate(ctx context.Context) (rueidis.Client, error) {
	if !breaker.IsProbe(ctx) {
		if err := c.b.Allow(); err != nil {
			return nil, err
		}
	}
	rc, err := c.client()
	if rc == nil {
		return nil, c.b.Observe(ctx, err)
	}
	return rc, nil
}

// B implements rueidis.Client. The builder does not depend on the
// connection (a single client or Sentinel: keys in any slot), so it is
// there before the rueidis client is.
func (c *Client) B() rueidis.Builder { return builder() }

// builder is the builder of a single client. rueidis makes builders only
// through a client: this one is made without a connection (its dial fails
// at once) and closed.
var builder = sync.OnceValue(func() rueidis.Builder {
	rc, _ := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{"builder.invalid:0"}, ForceSingleClient: true, DisableCache: true,
		DialCtxFn: func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
			return nil, errors.New("redisconn: the builder's client does not connect")
		},
	})
	b := rc.B()
	rc.Close()
	return b
})

// Do implements rueidis.Client.
func (c *Client) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	rc, err := c.gate(ctx)
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	res := rc.Do(ctx, cmd)
	if err := res.NonRedisError(); err != nil {
		return rueidis.NewErrorResult(c.b.Observe(ctx, err))
	}
	return res
}

// DoMulti implements rueidis.Client: the commands are written together and
// answered in order (a pipeline, or MULTI ... EXEC).
func (c *Client) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	rc, err := c.gate(ctx)
	if err != nil {
		return errorResults(err, len(multi))
	}
	res := rc.DoMulti(ctx, multi...)
	for i := range res {
		if err := res[i].NonRedisError(); err != nil {
			observed := c.b.Observe(ctx, err)
			for j := range res {
				if res[j].NonRedisError() != nil {
					res[j] = rueidis.NewErrorResult(observed)
				}
			}
			break
		}
	}
	return res
}

func errorResults(err error, n int) []rueidis.RedisResult {
	res := make([]rueidis.RedisResult, n)
	for i := range res {
		res[i] = rueidis.NewErrorResult(err)
	}
	return res
}

// Receive implements rueidis.Client on a dedicated connection, so that a
// subscription shares no connection with the commands of requests. It
// returns when ctx ends or the connection fails; the caller subscribes
// again.
func (c *Client) Receive(ctx context.Context, subscribe rueidis.Completed, fn func(msg rueidis.PubSubMessage)) error {
	rc, err := c.gate(ctx)
	if err != nil {
		return err
	}
	dc, release := rc.Dedicate()
	defer release()
	return c.b.Observe(ctx, dc.Receive(ctx, subscribe, fn))
}

// DoCache implements rueidis.Client; caching is off, so it is Do.
func (c *Client) DoCache(ctx context.Context, cmd rueidis.Cacheable, _ time.Duration) rueidis.RedisResult {
	return c.Do(ctx, rueidis.Completed(cmd))
}

// DoMultiCache implements rueidis.Client; caching is off, so it is DoMulti.
func (c *Client) DoMultiCache(ctx context.Context, multi ...rueidis.CacheableTTL) []rueidis.RedisResult {
	cmds := make([]rueidis.Completed, len(multi))
	for i, m := range multi {
		cmds[i] = rueidis.Completed(m.Cmd)
	}
	return c.DoMulti(ctx, cmds...)
}

// DoStream implements rueidis.Client.
func (c *Client) DoStream(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResultStream {
	rc, err := c.gate(ctx)
	if err != nil {
		return rueidis.NewErrorResultStream(err)
	}
	return rc.DoStream(ctx, cmd)
}

// DoMultiStream implements rueidis.Client.
func (c *Client) DoMultiStream(ctx context.Context, multi ...rueidis.Completed) rueidis.MultiRedisResultStream {
	rc, err := c.gate(ctx)
	if err != nil {
		return rueidis.NewErrorResultStream(err)
	}
	return rc.DoMultiStream(ctx, multi...)
}

// Dedicated implements rueidis.Client (not gated: the callback's commands
// run on a connection of their own).
func (c *Client) Dedicated(fn func(rueidis.DedicatedClient) error) error {
	rc, err := c.gate(context.Background())
	if err != nil {
		return err
	}
	return rc.Dedicated(fn)
}

// Dedicate implements rueidis.Client (not gated, as Dedicated). While
// the client cannot be made, the dedicated client fails every call.
func (c *Client) Dedicate() (rueidis.DedicatedClient, func()) {
	rc, err := c.gate(context.Background())
	if err != nil {
		return failing{err}, func() {}
	}
	return rc.Dedicate()
}

// failing is a dedicated client whose calls fail with err.
type failing struct{ err error }

func (f failing) B() rueidis.Builder { return builder() }
func (f failing) Do(context.Context, rueidis.Completed) rueidis.RedisResult {
	return rueidis.NewErrorResult(f.err)
}
func (f failing) DoMulti(_ context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	return errorResults(f.err, len(multi))
}
func (f failing) Receive(context.Context, rueidis.Completed, func(rueidis.PubSubMessage)) error {
	return f.err
}
func (f failing) Close()                                                       {}
func (f failing) SetPubSubHooks(rueidis.PubSubHooks) <-chan error              { return f.closed() }
func (f failing) SetOnInvalidations(func([]rueidis.RedisMessage)) <-chan error { return f.closed() }

// closed is a channel holding err, closed: no hook will be called.
func (f failing) closed() <-chan error {
	ch := make(chan error, 1)
	ch <- f.err
	close(ch)
	return ch
}

// Nodes implements rueidis.Client.
func (c *Client) Nodes() map[string]rueidis.Client {
	rc, _ := c.client()
	if rc == nil {
		return nil
	}
	return rc.Nodes()
}

// Mode implements rueidis.Client.
func (c *Client) Mode() rueidis.ClientMode {
	if len(c.opt.Sentinel.MasterSet) > 0 {
		return rueidis.ClientModeSentinel
	}
	return rueidis.ClientModeStandalone
}

// Close implements rueidis.Client: it waits for calls under way; later
// calls fail with ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	rc := c.cur.Swap(nil)
	c.mu.Unlock()
	if rc != nil {
		(*rc).Close()
	}
}

// Tx runs cmds in MULTI ... EXEC, written in one round trip, and returns
// the answers EXEC gave, one per command. The first error (of a command
// or of the transaction) is returned, as go-redis' TxPipelined did.
func Tx(ctx context.Context, c rueidis.Client, cmds ...rueidis.Completed) ([]rueidis.RedisMessage, error) {
	multi := make(rueidis.Commands, 0, len(cmds)+2)
	multi = append(multi, c.B().Multi().Build())
	multi = append(multi, cmds...)
	multi = append(multi, c.B().Exec().Build())
	res := c.DoMulti(ctx, multi...)
	for _, r := range res[:len(res)-1] {
		if err := r.Error(); err != nil {
			return nil, err
		}
	}
	answers, err := res[len(res)-1].ToArray()
	if err != nil {
		return nil, err
	}
	if len(answers) != len(cmds) {
		return nil, fmt.Errorf("redis: EXEC answered %d results for %d commands", len(answers), len(cmds))
	}
	for i := range answers {
		if err := answers[i].Error(); err != nil && !rueidis.IsRedisNil(err) {
			return nil, err
		}
	}
	return answers, nil
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
