package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
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
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis runs a private redis-server on 127.0.0.1:port.
func StartRedis(t testing.TB, port int) *RedisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server not installed: %v", err)
	}
	p := &RedisProc{t: t, port: port, dir: t.TempDir()}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Addr is host:port.
func (p *RedisProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Start (re)starts the server and waits until it answers.
func (p *RedisProc) Start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--dir", p.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("redis-server: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr()})
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
