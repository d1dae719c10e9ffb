// Package sidecar runs the built sbc-sip-sidecar binary and sipp scenarios
// against it, for end-to-end tests.
package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the service once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sidecar-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sbc-sip-sidecar")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sbc-sip-sidecar")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// BaseEnv is the environment pointing the service at the test MySQL and Redis.
func BaseEnv(t testing.TB) map[string]string {
	my := testenv.MySQL(t)
	redisAddr := testenv.Redis(t)
	host, port, _ := strings.Cut(redisAddr, ":")
	return map[string]string{
		"JAMBONES_MYSQL_HOST":     my.Host,
		"JAMBONES_MYSQL_PORT":     strconv.Itoa(my.Port),
		"JAMBONES_MYSQL_USER":     my.User,
		"JAMBONES_MYSQL_PASSWORD": my.Password,
		"JAMBONES_MYSQL_DATABASE": my.Database,
		"JAMBONES_REDIS_HOST":     host,
		"JAMBONES_REDIS_PORT":     port,
		"JAMBONES_LOGLEVEL":       "debug",
		"ENCRYPTION_SECRET":       "e2e-secret",
		// Each service gets its own runtime CLI socket (the default is shared).
		"SBC_SOCKET_PATH": filepath.Join(t.TempDir(), "cli.sock"),
	}
}

// Proc is a running service.
type Proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

// Logs returns what the service logged so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// WaitLog reports whether the service logs a line containing substr within
// 10 s. A line logged before an answer was sent may reach the test after the
// answer (stderr is a pipe read by another goroutine): tests that look for a
// line must wait for it, not read Logs once.
func (p *Proc) WaitLog(substr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if strings.Contains(p.Logs(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start runs the binary with env (and nothing else from the test's
// environment but PATH/HOME) and waits until a log line contains ready.
func Start(t testing.TB, env map[string]string, ready string, args ...string) *Proc {
	t.Helper()
	return start(t, env, ready, exec.Command(Binary(t), args...))
}

// StartLimited is Start with the service's open files limit (soft and hard,
// so Go's start-up raise cannot lift it) set to nofile, through prlimit(1)
// (util-linux).
func StartLimited(t testing.TB, env map[string]string, ready string, nofile int, args ...string) *Proc {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prlimit (util-linux) is required")
		}
		t.Skip("prlimit (util-linux) not installed")
	}
	n := strconv.Itoa(nofile)
	argv := append([]string{"--nofile=" + n + ":" + n, "--", Binary(t)}, args...)
	return start(t, env, ready, exec.Command(prlimit, argv...))
}

func start(t testing.TB, env map[string]string, ready string, cmd *exec.Cmd) *Proc {
	t.Helper()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if !signalled && strings.Contains(line, ready) {
				signalled = true
				close(readyc)
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("service logs:\n%s", tail(p.Logs(), 200))
		}
	})
	select {
	case <-readyc:
	case <-p.done:
		t.Fatalf("service exited before ready:\n%s", p.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("service not ready after 20s:\n%s", p.Logs())
	}
	return p
}

// Stop sends SIGTERM and waits (then kills) the service.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL (a crash: nothing is cleaned up) and waits for the exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pid is the service's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitCode is the exit status once Done is closed.
func (p *Proc) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Sipp describes one sipp run.
type Sipp struct {
	Scenario  string // file name in testenv.ScenarioDir (testdata/sipp), or a path
	CSV       string // file name in testenv.ScenarioDir (testdata/sipp), or a path
	Target    string // host:port of the service
	LocalIP   string // default 127.0.0.1
	LocalPort int    // fixed source port (never let sipp pick 5060)
	Transport string // "u1" (default) or "t1"
	Calls     int    // default 1
	Rate      int    // calls per second, default 10
	Extra     []string
	Timeout   time.Duration
	// Dir is where sipp runs and leaves its traces (default: a temp dir).
	Dir string
}

// Run runs sipp and fails the test when sipp reports a failed call.
func Run(t testing.TB, s Sipp) {
	t.Helper()
	if err := RunErr(t, s); err != nil {
		t.Fatal(err)
	}
}

// RunErr runs sipp and returns an error when a call failed.
func RunErr(t testing.TB, s Sipp) error {
	t.Helper()
	bin := testenv.Sipp(t)
	dir := testenv.ScenarioDir(t)
	resolve := func(f string) string {
		if f == "" || filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(dir, f)
	}
	if s.LocalIP == "" {
		s.LocalIP = "127.0.0.1"
	}
	if s.Transport == "" {
		s.Transport = "u1"
	}
	if s.Calls == 0 {
		s.Calls = 1
	}
	if s.Rate == 0 {
		s.Rate = 10
	}
	if s.Timeout == 0 {
		s.Timeout = 20 * time.Second
	}
	args := []string{s.Target, "-sf", resolve(s.Scenario),
		"-m", strconv.Itoa(s.Calls), "-r", strconv.Itoa(s.Rate), "-l", strconv.Itoa(s.Calls),
		"-i", s.LocalIP, "-p", strconv.Itoa(s.LocalPort), "-t", s.Transport,
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(s.Timeout.Seconds())), "-timeout_error",
		"-trace_err", "-trace_msg"}
	if s.CSV != "" {
		args = append(args, "-inf", resolve(s.CSV))
	}
	args = append(args, s.Extra...)
	work := s.Dir
	if work == "" {
		work = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sipp %s (%s) failed: %v\n%s\n%s", filepath.Base(s.Scenario), s.Transport, err,
			tail(string(out), 30), traces(work))
	}
	return nil
}

// traces returns sipp's message and error traces from dir.
func traces(dir string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(f), tail(string(data), 80))
	}
	return b.String()
}

// Webhook starts the customer auth server where the test database's
// registration hook points. TEST_WEBHOOK_ADDR (default 127.0.0.1:4000)
// moves it, e.g. so that several checkouts can test at once; the hook's
// URL in MySQL is rewritten for the test and restored afterwards.
func Webhook(t testing.TB, opts authserver.Options) *authserver.Server {
	t.Helper()
	addr := os.Getenv("TEST_WEBHOOK_ADDR")
	if addr == "" {
		addr = DefaultWebhookAddr
	}
	if addr != DefaultWebhookAddr {
		db := testenv.RootDB(t, testenv.MySQL(t))
		q := "UPDATE webhooks SET url = ? WHERE url = ?"
		if _, err := db.Exec(q, "http://"+addr+"/auth", "http://"+DefaultWebhookAddr+"/auth"); err != nil {
			t.Fatalf("rewriting webhook url: %v", err)
		}
		t.Cleanup(func() {
			_, _ = db.Exec(q, "http://"+DefaultWebhookAddr+"/auth", "http://"+addr+"/auth")
		})
	}
	return authserver.Start(t, addr, opts)
}

// DefaultWebhookAddr is where testdata/jambonz-db/test-data.sql points the hook.
const DefaultWebhookAddr = "127.0.0.1:4000"

// CLI runs `sbc-sip-sidecar cli args...` against the service started with
// env and returns its output and exit status.
func CLI(t testing.TB, env map[string]string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"cli"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SBC_SOCKET_PATH=" + env["SBC_SOCKET_PATH"]}
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("cli: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
