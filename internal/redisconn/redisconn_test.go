package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{redis.Nil, false},
		{fmt.Errorf("wrapped: %w", redis.Nil), false},
		{redis.ErrClosed, false},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{redis.ErrPoolTimeout, false},
		{fmt.Errorf("wrapped: %w", redis.ErrPoolExhausted), false},
		{errors.New("redis: all sentinels specified in configuration are unreachable"), true},
	} {
		if got := Outage(tc.err); got != tc.want {
			t.Errorf("Outage(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// A server error reply is an answer.
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	rdb := rp.Client()
	err := rdb.Do(context.Background(), "NO-SUCH-COMMAND").Err()
	if err == nil || Outage(err) {
		t.Errorf("server error reply %v classified as an outage", err)
	}
}

// TestGate_FailsFastWhileDownAndRecovers runs the client against a real
// redis-server that the test stops and starts again.
func TestGate_FailsFastWhileDownAndRecovers(t *testing.T) {
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	rdb, b, err := Open(config.Redis{Host: "127.0.0.1", Port: rp.Port(), DialTimeout: time.Second, Timeout: time.Second},
		10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if err := rdb.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key = %v, want redis.Nil untouched", err)
	}
	if !b.Up() {
		t.Fatal("redis.Nil opened the breaker")
	}

	rp.Stop()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("first command with Redis down = %v, want ErrUnavailable", err)
	}
	// While down: pipelines and commands are refused before any dial.
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Set(ctx, "k", "v", 0); return nil })
	if !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("pipeline with Redis down = %v, want ErrUnavailable", err)
	}
	var ue *breaker.UnavailableError
	if err := rdb.Get(ctx, "k").Err(); !errors.As(err, &ue) || ue.Backend != "redis" {
		t.Fatalf("GET with Redis down = %v", err)
	}

	rp.Start()
	for !b.Up() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET after recovery = %v", err)
	}
}

// Values and pipelines much longer than a connection's buffers go through
// whole, alone and pipelined.
func TestLongValuesPastTheBuffers(t *testing.T) {
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	rdb, _, err := Open(config.Redis{Host: "127.0.0.1", Port: rp.Port(), DialTimeout: time.Second, Timeout: 5 * time.Second},
		time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if o := rdb.(*redis.Client).Options(); o.ReadBufferSize != connBuffer || o.WriteBufferSize != connBuffer ||
		o.PipelineReadBufferSize != connBuffer || o.PipelineWriteBufferSize != connBuffer {
		t.Fatalf("buffers %d/%d, pipelines %d/%d; want %d", o.ReadBufferSize, o.WriteBufferSize,
			o.PipelineReadBufferSize, o.PipelineWriteBufferSize, connBuffer)
	}
	ctx := context.Background()
	long := strings.Repeat("0123456789abcdef", 10*connBuffer/16+7) // ten buffers and some
	if err := rdb.Set(ctx, "long", long, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "long").Result(); err != nil || got != long {
		t.Fatalf("GET of %d bytes = %d bytes, %v", len(long), len(got), err)
	}
	var gets []*redis.StringCmd
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 4 {
			p.Set(ctx, fmt.Sprint("long", i), long, 0)
			gets = append(gets, p.Get(ctx, fmt.Sprint("long", i)))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		if got, err := g.Result(); err != nil || got != long {
			t.Fatalf("pipelined GET %d: %d bytes, %v", i, len(got), err)
		}
	}
}
