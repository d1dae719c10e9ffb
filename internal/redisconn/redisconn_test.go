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

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rueidis.Nil, false},
		{fmt.Errorf("wrapped: %w", rueidis.Nil), false},
		{rueidis.ErrClosing, false},
		{ErrClosed, false},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("redis: connecting: %w", errors.New("no sentinel answered")), true},
	} {
		if got := Outage(tc.err); got != tc.want {
			t.Errorf("Outage(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// A server error reply is an answer.
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	rdb, _, err := Open(config.Redis{Host: "127.0.0.1", Port: rp.Port(), DialTimeout: time.Second, Timeout: time.Second},
		time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	err = rdb.Do(context.Background(), rdb.B().Arbitrary("NO-SUCH-COMMAND").Build()).Error()
	if err == nil || Outage(err) {
		t.Errorf("server error reply %v classified as an outage", err)
	}
}

// TestGate_FailsFastWhileDownAndRecovers runs the client against a real
// redis-server that the test stops and starts again.
func TestGate_FailsFastWhileDownAndRecovers(t *testing.T) {
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	ctx, rdb, b := openRunning(t, rp.Port())

	if err := rdb.Do(ctx, rdb.B().Get().Key("missing").Build()).Error(); !rueidis.IsRedisNil(err) {
		t.Fatalf("GET of a missing key = %v, want the nil answer untouched", err)
	}
	if !b.Up() {
		t.Fatal("a nil answer opened the breaker")
	}

	rp.Stop()
	if err := rdb.Do(ctx, rdb.B().Set().Key("k").Value("v").Build()).Error(); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("first command with Redis down = %v, want ErrUnavailable", err)
	}
	// While down: transactions, pipelines and commands are refused before any dial.
	if _, err := Tx(ctx, rdb, rdb.B().Set().Key("k").Value("v").Build()); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("transaction with Redis down = %v, want ErrUnavailable", err)
	}
	for i, r := range rdb.DoMulti(ctx, rdb.B().Get().Key("k").Build(), rdb.B().Get().Key("k").Build()) {
		if err := r.Error(); !errors.Is(err, breaker.ErrUnavailable) {
			t.Fatalf("pipelined command %d with Redis down = %v, want ErrUnavailable", i, err)
		}
	}
	var ue *breaker.UnavailableError
	if err := rdb.Do(ctx, rdb.B().Get().Key("k").Build()).Error(); !errors.As(err, &ue) || ue.Backend != "redis" {
		t.Fatalf("GET with Redis down = %v", err)
	}
	if err := rdb.Receive(ctx, rdb.B().Subscribe().Channel("c").Build(), func(rueidis.PubSubMessage) {}); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("SUBSCRIBE with Redis down = %v, want ErrUnavailable", err)
	}

	rp.Start()
	for !b.Up() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := rdb.Do(ctx, rdb.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET after recovery = %v", err)
	}
	res, err := Tx(ctx, rdb, rdb.B().Incr().Key("n").Build(), rdb.B().Get().Key("k").Build())
	if err != nil {
		t.Fatalf("transaction after recovery = %v", err)
	}
	if n, _ := res[0].AsInt64(); n != 1 {
		t.Errorf("INCR in the transaction = %d, want 1", n)
	}
	if v, _ := res[1].ToString(); v != "v" {
		t.Errorf("GET in the transaction = %q, want v", v)
	}
}

// Open does not fail when Redis is not there yet; the first command opens
// the breaker and the probe closes it once Redis answers.
func TestOpen_RedisDownAtStart(t *testing.T) {
	port := testenv.FreePort(t)
	ctx, rdb, b := openRunning(t, port)
	if err := rdb.Ping(ctx); !errors.Is(err, breaker.ErrUnavailable) {
		t.Fatalf("PING with no server = %v, want ErrUnavailable", err)
	}
	testenv.StartRedis(t, port)
	for !b.Up() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := rdb.Ping(ctx); err != nil {
		t.Fatalf("PING once the server runs = %v", err)
	}
}

// Values and pipelines much longer than a connection's buffers go through
// whole, alone and pipelined.
func TestLongValuesPastTheBuffers(t *testing.T) {
	rp := testenv.StartRedis(t, testenv.FreePort(t))
	c := config.Redis{Host: "127.0.0.1", Port: rp.Port(), DialTimeout: time.Second, Timeout: 5 * time.Second}
	if o, err := options(c); err != nil || o.ReadBufferEachConn != connBuffer || o.WriteBufferEachConn != connBuffer {
		t.Fatalf("buffers %d/%d (%v); want %d", o.ReadBufferEachConn, o.WriteBufferEachConn, err, connBuffer)
	}
	rdb, _, err := Open(c, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	long := strings.Repeat("0123456789abcdef", 10*connBuffer/16+7) // ten buffers and some
	if err := rdb.Do(ctx, rdb.B().Set().Key("long").Value(long).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Do(ctx, rdb.B().Get().Key("long").Build()).ToString(); err != nil || got != long {
		t.Fatalf("GET of %d bytes = %d bytes, %v", len(long), len(got), err)
	}
	var cmds rueidis.Commands
	for i := range 4 {
		cmds = append(cmds, rdb.B().Set().Key(fmt.Sprint("long", i)).Value(long).Build(),
			rdb.B().Get().Key(fmt.Sprint("long", i)).Build())
	}
	for i, r := range rdb.DoMulti(ctx, cmds...) {
		if i%2 == 0 {
			if err := r.Error(); err != nil {
				t.Fatalf("pipelined SET %d: %v", i/2, err)
			}
			continue
		}
		if got, err := r.ToString(); err != nil || got != long {
			t.Fatalf("pipelined GET %d: %d bytes, %v", i/2, len(got), err)
		}
	}
}

// The SENTINEL options carry the sentinels, the master set and the
// sentinels' credentials; TLS applies to both.
func TestOptions_Sentinel(t *testing.T) {
	o, err := options(config.Redis{Sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, SentinelMasterName: "m",
		SentinelUsername: "su", SentinelPassword: "sp", Username: "u", Password: "p", DialTimeout: time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.InitAddress, ",") != "10.0.0.1:26379,10.0.0.2:26379" || o.Sentinel.MasterSet != "m" ||
		o.Sentinel.Username != "su" || o.Sentinel.Password != "sp" || o.Username != "u" || o.Password != "p" ||
		o.Sentinel.Dialer.Timeout != time.Second || o.ConnWriteTimeout != 2*time.Second || !o.DisableRetry || !o.DisableCache {
		t.Errorf("options = %+v", o)
	}
}

// openRunning opens a client for the Redis on port with its breaker
// running (probing every 10 ms); both stop when the test ends.
func openRunning(t *testing.T, port int) (context.Context, *Client, *breaker.Breaker) {
	t.Helper()
	rdb, b, err := Open(config.Redis{Host: "127.0.0.1", Port: port, DialTimeout: time.Second, Timeout: time.Second},
		10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; rdb.Close() })
	return ctx, rdb, b
}
