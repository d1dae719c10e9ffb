package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// originalSystem is the system name of the original Node.js sbc-sip-sidecar
// (-original: a checkout of the public jambonz/sbc-sip-sidecar with its npm
// dependencies installed), run with `node app.js` as a client of the same
// drachtio-server as ours-drachtio. The bench only runs it; see docs/performance.md.
const originalSystem = "original"

// startOriginal starts drachtio-server and the original connected to it; as for
// ours-drachtio, the system's CPU and memory are both processes' (node and
// drachtio-server), drachtio-server's also on their own.
func (b *bench) startOriginal(ctx context.Context) (sut, func(), error) {
	front, stopServer, err := b.startDrachtioServer(ctx)
	if err != nil {
		return sut{}, nil, err
	}
	logf := filepath.Join(b.out, originalSystem+".log")
	lf, err := os.Create(logf)
	if err != nil {
		stopServer()
		return sut{}, nil, fmt.Errorf("%s: %w", originalSystem, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, "node", "app.js")
	cmd.Dir = b.originalDir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// What the original reads (its lib/config.js and the @jambonz helpers): the same
	// MySQL, Redis and secrets as ours, log level info as the bench runs ours.
	// JAMBONES_TIME_SERIES_HOST is required at start-up; it is only written to when
	// an alert is raised (a failing webhook), and nothing listens there. Metrics
	// (ENABLE_METRICS) stay off, and JAMBONES_HOSTING unset (no per-account device
	// limits), as for ours. The Node.js environment is production (NODE_ENV unset).
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.out,
		"JAMBONES_MYSQL_HOST=" + b.mysqlHost, "JAMBONES_MYSQL_PORT=" + strconv.Itoa(b.mysqlPort),
		"JAMBONES_MYSQL_USER=" + b.mysqlUser, "JAMBONES_MYSQL_PASSWORD=" + b.mysqlPass,
		"JAMBONES_MYSQL_DATABASE=" + b.mysqlDB,
		"JAMBONES_REDIS_HOST=" + b.redisHost, "JAMBONES_REDIS_PORT=" + strconv.Itoa(b.redisPort),
		"JAMBONES_TIME_SERIES_HOST=127.0.0.1", "JAMBONES_CLUSTER_ID=bench",
		"ENCRYPTION_SECRET=" + b.secret, "JAMBONES_LOGLEVEL=info",
		"SBC_SOCKET_PATH=" + filepath.Join(b.out, originalSystem+"-cli.sock"),
	}, b.drachtioClientEnv()...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		cancel()
		lf.Close()
		stopServer()
		return sut{}, nil, fmt.Errorf("%s: %w", originalSystem, err)
	}
	stop := func() {
		cancel()
		_ = cmd.Wait()
		lf.Close()
		stopServer()
	}
	// Logged once it is authenticated with drachtio-server (its routes follow at once).
	if err := waitLog(ctx, logf, "connected to drachtio listening on", 20*time.Second); err != nil {
		stop()
		return sut{}, nil, fmt.Errorf("%s: %w", originalSystem, err)
	}
	return sut{name: originalSystem, pid: cmd.Process.Pid, front: front}, stop, nil
}

// forgetBindings deletes the bench users' bindings (user:<aor> keys and their
// active-user entries) before a run of the original: it answers a REGISTER from
// its cache, without a challenge, whenever the AoR has a binding from the same
// source address and port, whatever the Contact, and sipp sends each user from
// the same port in every run. Ours answers from cache only a refresh of the same
// Contact, which the scenario's unique Contact never is.
func (b *bench) forgetBindings() error {
	const script = `local n = 0
for _, p in ipairs(ARGV) do
  for _, k in ipairs(redis.call('KEYS', p)) do
    redis.call('DEL', k)
    redis.call('ZREM', 'active-user', k)
    n = n + 1
  end
end
return n`
	out, err := exec.Command("redis-cli", "-h", b.redisHost, "-p", strconv.Itoa(b.redisPort),
		"EVAL", script, "0", "user:*."+hookDomain, "user:*.bench.local").CombinedOutput()
	if err != nil {
		return fmt.Errorf("forget bindings: %w: %s", err, out)
	}
	return nil
}

// originalVersion is the original's package.json version and the node version.
func originalVersion(dir string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		_ = json.Unmarshal(raw, &pkg)
	}
	srf := struct {
		Version string `json:"version"`
	}{}
	if raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "drachtio-srf", "package.json")); err == nil {
		_ = json.Unmarshal(raw, &srf)
	}
	return strings.TrimSpace(fmt.Sprintf("original sbc-sip-sidecar %s (drachtio-srf %s) on node %s",
		pkg.Version, srf.Version, firstLine("node", "--version")))
}
