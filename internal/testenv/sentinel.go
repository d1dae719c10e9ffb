package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelProc is a redis-sentinel process owned by one test.
type SentinelProc struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

// SentinelOptions describe the monitored master.
type SentinelOptions struct {
	MasterName string
	MasterPort int // on 127.0.0.1
	Quorum     int
	// DownAfter is how long the master must be unreachable before it is
	// considered down (short in tests).
	DownAfter time.Duration
}

// StartSentinel runs redis-sentinel (Debian package redis-sentinel) on
// 127.0.0.1:port monitoring the master in opt, and waits until it answers.
func StartSentinel(t testing.TB, port int, opt SentinelOptions) *SentinelProc {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		unavailable(t, "redis-sentinel not installed (Debian package redis-sentinel): %v", err)
	}
	dir := t.TempDir()
	// Sentinel rewrites its configuration file: it must be its own.
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, dir, opt.MasterName, opt.MasterPort, opt.Quorum,
		opt.MasterName, opt.DownAfter.Milliseconds(), opt.MasterName, opt.MasterName)
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &SentinelProc{Port: port, cmd: exec.Command(bin, path), done: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("redis-sentinel: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(termSignal)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	c := p.Client()
	defer c.Close()
	for i := 0; i < 100; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis-sentinel on port %d did not start", port)
	return nil
}

// Addr is host:port.
func (p *SentinelProc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// Client returns a Sentinel client (the caller closes it).
func (p *SentinelProc) Client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: p.Addr()})
}
