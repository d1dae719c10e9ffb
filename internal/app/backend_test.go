package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Each of the four modes is a backend with every part in place; only the
// readiness checks and the regbot start delay tell Redis and MySQL apart.
func TestOpenBackend_FourModes(t *testing.T) {
	redisEnv := func(t *testing.T) map[string]string {
		host, port, _ := net.SplitHostPort(testenv.Redis(t))
		return map[string]string{"JAMBONES_REDIS_HOST": host, "JAMBONES_REDIS_PORT": port}
	}
	mysqlEnv := func(t *testing.T) map[string]string {
		e := testenv.MySQL(t)
		return map[string]string{"JAMBONES_MYSQL_HOST": e.Host, "JAMBONES_MYSQL_PORT": strconv.Itoa(e.Port),
			"JAMBONES_MYSQL_USER": e.User, "JAMBONES_MYSQL_PASSWORD": e.Password, "JAMBONES_MYSQL_DATABASE": e.Database}
	}
	none := func(*testing.T) map[string]string { return nil }
	for _, tc := range []struct {
		name       string
		state, dir func(t *testing.T) map[string]string
		wantChecks []string
		wantDelay  bool
		wantClaims bool
	}{
		{"EmbeddedFile", none, none, nil, false, false},
		{"EmbeddedMySQL", none, mysqlEnv, []string{"mysql"}, false, false},
		{"RedisFile", redisEnv, none, []string{"redis"}, true, true},
		{"RedisMySQL", redisEnv, mysqlEnv, []string{"mysql", "redis"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"SIDECAR_STATE_FILE": filepath.Join(t.TempDir(), "state")}
			for k, v := range tc.state(t) {
				env[k] = v
			}
			for k, v := range tc.dir(t) {
				env[k] = v
			}
			cfg := load(t, env)
			cfg.ClusterID = "t-backend-" + tc.name
			ctx := context.Background()
			be, err := openBackend(ctx, cfg, metrics.New("test", nil), quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer be.close()
			var checks []string
			for name, check := range be.checks {
				checks = append(checks, name)
				if err := check(ctx); err != nil {
					t.Errorf("check %s: %v", name, err)
				}
			}
			slices.Sort(checks)
			if !slices.Equal(checks, tc.wantChecks) {
				t.Errorf("checks = %v, want %v", checks, tc.wantChecks)
			}
			if (be.startDelayMax > 0) != tc.wantDelay || (be.claims != nil) != tc.wantClaims {
				t.Errorf("start delay %v, claims %v; want delay %v, claims %v", be.startDelayMax, be.claims != nil, tc.wantDelay, tc.wantClaims)
			}
			if be.registrations == nil || be.kv == nil || be.bans == nil || be.members == nil ||
				be.directory == nil || be.carriers == nil || be.sbcAddresses == nil {
				t.Fatalf("a part is missing: %+v", be)
			}
			if n, err := be.registrations.CountRealm(ctx, "nobody.invalid"); n != 0 || err != nil {
				t.Errorf("CountRealm = %d, %v", n, err)
			}
			if a, err := be.directory.AccountByRealm(ctx, "nobody.invalid"); a != nil || err != nil {
				t.Errorf("AccountByRealm = %v, %v", a, err)
			}
			if n, err := be.members.Add(ctx, membership.ActiveRTP, "10.0.0.1"); n != 1 || err != nil {
				t.Errorf("members.Add = %d, %v", n, err)
			}
			_, _ = be.members.Remove(ctx, membership.ActiveRTP, "10.0.0.1")
			if banned, err := be.bans.Banned(ctx, "ip:192.0.2.1"); banned || err != nil {
				t.Errorf("Banned = %v, %v", banned, err)
			}
		})
	}
}

func TestJobs_StopWaitsForEveryJob(t *testing.T) {
	j := newJobs(context.Background())
	var ended atomic.Int32
	for range 3 {
		j.Go(func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond) // work after the signal still counts
			ended.Add(1)
		})
	}
	j.every(time.Hour, func(context.Context) {})
	j.stop()
	if n := ended.Load(); n != 3 {
		t.Errorf("%d of 3 jobs ended before stop returned", n)
	}
}

// Run in demo mode (embedded store, built-in directory) comes up and
// returns once its context ends.
func TestRun_DemoModeStopsOnCancel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cli.sock")
	cfg := load(t, map[string]string{
		"SIDECAR_STATE_FILE": filepath.Join(t.TempDir(), "state"),
		"SBC_SOCKET_PATH":    sock,
	})
	// Ports the system picks (the configuration insists on real ones).
	cfg.SIPListen, cfg.SIPListenSet = []config.Listen{{Transport: "udp", Host: "127.0.0.1"}}, true
	cfg.HTTPListen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet()) }()
	// The CLI socket exists once the jobs run.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("CLI socket never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
