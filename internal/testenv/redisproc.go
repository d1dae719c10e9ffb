package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisProc is a redis-server owned by one test, so that the test may stop
// and restart it (fault tests). Data persists across restarts (AOF).
type RedisProc struct {
	t    testing.TB
	port int
	dir  string
	opt  RedisOptions
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisOptions are the extras of StartRedisWith.
type RedisOptions struct {
	// Args are added to the command line (e.g. --replicaof host port).
	Args []string
	// TLS, when set, makes port a TLS port (the plain port is off); the
	// caller gives the server's --tls-* arguments in Args, and TLS is the
	// client configuration used to see it answer.
	TLS *tls.Config
}

// StartRedis runs a private redis-server on 127.0.0.1:port.
func StartRedis(t testing.TB, port int) *RedisProc {
	t.Helper()
	return StartRedisWith(t, port, RedisOptions{})
}

// StartRedisWith runs a private redis-server on 127.0.0.1:port with opt.
func StartRedisWith(t testing.TB, port int, opt RedisOptions) *RedisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server not installed: %v", err)
	}
	p := &RedisProc{t: t, port: port, dir: t.TempDir(), opt: opt}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Port is the server's port.
func (p *RedisProc) Port() int { return p.port }

// Client returns a client of the server (TLS when it is a TLS server),
// closed at the end of the test.
func (p *RedisProc) Client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), TLSConfig: p.opt.TLS})
	p.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Kill ends the server with SIGKILL (a crash: nothing flushed, no goodbye
// to replicas or sentinels) and waits for it.
func (p *RedisProc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr is host:port.
func (p *RedisProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Start (re)starts the server and waits until it answers.
func (p *RedisProc) Start() {
	p.t.Helper()
	args := []string{"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--dir", p.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", ""}
	if p.opt.TLS != nil {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(p.port))
	}
	p.cmd = exec.Command("redis-server", append(args, p.opt.Args...)...)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("redis-server: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), TLSConfig: p.opt.TLS})
	defer rdb.Close()
	for i := 0; i < 100; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("redis-server on %s did not start", p.Addr())
}

// Stop shuts the server down (SIGTERM) and waits for it.
func (p *RedisProc) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(termSignal)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *RedisProc) String() string { return fmt.Sprintf("redis-server %s", p.Addr()) }
