package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start serves the fs and settings commands on a socket in a temp dir,
// backed by the test Redis under cluster.
func start(t *testing.T, cluster string) (string, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	clear := func() {
		keys, _ := rdb.Keys(context.Background(), cluster+":*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	}
	clear()
	path := filepath.Join(t.TempDir(), "cli.sock")
	srv := NewServer(path, quiet())
	RegisterSettings(srv, NewSettings())
	RegisterFeatureServers(srv, membership.New(testenv.RueidisClient(t, testenv.Redis(t)), cluster, time.Minute, quiet()))
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		clear()
	})
	return path, rdb
}

func run(path string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "SBC_SOCKET_PATH" {
			return path
		}
		return ""
	}
	code := Main(context.Background(), args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI_SocketIsPrivate(t *testing.T) {
	path, _ := start(t, "t-cli-mode")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestCLI_FeatureServerCommands(t *testing.T) {
	path, rdb := start(t, "t-cli-fs")
	ctx := context.Background()
	rdb.SAdd(ctx, "t-cli-fs:active-fs", "10.0.0.1:5060", "10.0.0.2:5060")

	steps := []struct {
		args    []string
		code    int
		stdout  []string // substrings
		stderr  string
		drained string // members of drained-fs after the step, comma-separated
		active  string
	}{
		{[]string{"fs", "active"}, 0, []string{"Active feature servers (2)", "10.0.0.1:5060", "10.0.0.2:5060"}, "", "", "10.0.0.1:5060,10.0.0.2:5060"},
		{[]string{"fs", "drained"}, 0, []string{"No feature servers drained"}, "", "", "10.0.0.1:5060,10.0.0.2:5060"},
		{[]string{"fs", "drain", "10.0.0.1"}, 0, []string{"Drained 10.0.0.1", "Removed from active-fs: 10.0.0.1:5060", "Drained: [10.0.0.1]"}, "", "10.0.0.1", "10.0.0.2:5060"},
		{[]string{"fs", "drain", "10.0.0.1"}, 0, []string{"Drained 10.0.0.1"}, "", "10.0.0.1", "10.0.0.2:5060"},
		{[]string{"fs", "list"}, 0, []string{"10.0.0.1", "drained", "10.0.0.2:5060", "active"}, "", "10.0.0.1", "10.0.0.2:5060"},
		{[]string{"fs", "drained"}, 0, []string{"Drained feature servers:", "  10.0.0.1"}, "", "10.0.0.1", "10.0.0.2:5060"},
		{[]string{"fs", "undrain", "10.0.0.1"}, 0, []string{"Undrained 10.0.0.1", "Drained: []"}, "", "", "10.0.0.2:5060"},
		{[]string{"fs", "drain", "10.0.0.300"}, 2, nil, `invalid IP address "10.0.0.300"`, "", "10.0.0.2:5060"},
		{[]string{"fs", "drain"}, 2, nil, "needs the feature server's IP address", "", "10.0.0.2:5060"},
		{[]string{"fs", "bogus"}, 2, nil, `unknown fs command "bogus"`, "", "10.0.0.2:5060"},
		{[]string{"nope"}, 2, nil, `unknown command "nope"`, "", "10.0.0.2:5060"},
	}
	for _, st := range steps {
		code, out, errs := run(path, st.args...)
		name := strings.Join(st.args, " ")
		if code != st.code {
			t.Errorf("%s: exit %d, want %d (stdout %q stderr %q)", name, code, st.code, out, errs)
		}
		for _, s := range st.stdout {
			if !strings.Contains(out, s) {
				t.Errorf("%s: stdout %q lacks %q", name, out, s)
			}
		}
		if st.stderr != "" && !strings.Contains(errs, st.stderr) {
			t.Errorf("%s: stderr %q lacks %q", name, errs, st.stderr)
		}
		d, _ := rdb.SMembers(ctx, "t-cli-fs:drained-fs").Result()
		a, _ := rdb.SMembers(ctx, "t-cli-fs:active-fs").Result()
		if got := strings.Join(d, ","); got != st.drained {
			t.Errorf("%s: drained-fs = %q, want %q", name, got, st.drained)
		}
		if got := strings.Join(sorted(a), ","); got != st.active {
			t.Errorf("%s: active-fs = %q, want %q", name, got, st.active)
		}
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func TestCLI_RuntimeSettings(t *testing.T) {
	path, _ := start(t, "t-cli-settings")
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"list"}, "No runtime settings"},
		{[]string{"set", "logLevel", "debug"}, `logLevel = "debug"`},
		{[]string{"set", "limit", "5"}, "limit = 5"},
		{[]string{"get", "limit"}, "limit = 5"},
		{[]string{"get", "missing"}, "missing = null"},
		{[]string{"add", "blocked", "1.2.3.4"}, "blocked = [1.2.3.4]"},
		{[]string{"add", "blocked", "5.6.7.8"}, "blocked = [1.2.3.4, 5.6.7.8]"},
		{[]string{"remove", "blocked", "1.2.3.4"}, "blocked = [5.6.7.8]"},
		{[]string{"list"}, "blocked = [\"5.6.7.8\"]\nlimit = 5\nlogLevel = \"debug\"\n"},
	}
	for _, st := range steps {
		code, out, errs := run(path, st.args...)
		if code != 0 || !strings.Contains(out, st.want) {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", st.args, code, out, errs, st.want)
		}
	}
}

func TestCLI_ErrorsAreClear(t *testing.T) {
	dir := t.TempDir()

	// No socket.
	code, _, errs := run(filepath.Join(dir, "missing.sock"), "fs", "drained")
	if code != 1 || !strings.Contains(errs, "does not exist: is sbc-sip-sidecar running") {
		t.Errorf("missing socket: exit %d stderr %q", code, errs)
	}

	// A socket file nobody listens on.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	code, _, errs = run(stale, "fs", "drained")
	if code != 1 || !strings.Contains(errs, "nothing is listening") {
		t.Errorf("stale socket: exit %d stderr %q", code, errs)
	}

	// Server-side validation too (a client other than ours).
	path, _ := start(t, "t-cli-errors")
	res, err := Call(context.Background(), path, Command{Action: "fs-drain", Server: "not-an-ip"})
	if err == nil || !strings.Contains(err.Error(), "invalid IP address") || res["success"] != false {
		t.Errorf("server-side validation: %v %v", res, err)
	}
	if _, err := Call(context.Background(), path, Command{Action: "bogus"}); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("unknown action: %v", err)
	}
}

func TestCLI_TimeoutWhenServerDoesNotAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the client timeout")
	}
	path := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // read, never answer
		}
	}()
	code, _, errs := run(path, "fs", "drained")
	if code != 1 || !strings.Contains(errs, "no answer from") {
		t.Errorf("mute server: exit %d stderr %q", code, errs)
	}
}

func TestServer_RefusesToReplaceALiveSocket(t *testing.T) {
	path, _ := start(t, "t-cli-live")
	if _, err := NewServer(path, quiet()).Listen(); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Listen: %v", err)
	}
}
