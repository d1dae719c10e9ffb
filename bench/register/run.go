package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
)

// results is results.json.
type results struct {
	Date       string       `json:"date"`
	Machine    string       `json:"machine"`
	Versions   []string     `json:"versions"`
	LoadBefore string       `json:"load_before"`
	Settings   string       `json:"settings"`
	Cases      []caseResult `json:"cases"`
	Memory     []memResult  `json:"memory"`
}

type caseResult struct {
	Name     string      `json:"name"`
	System   string      `json:"system"` // ours, kamailio, ours-drachtio, before
	Path     string      `json:"path"`   // clients, webhook
	Scenario string      `json:"scenario"`
	MaxRate  int         `json:"max_rate"` // highest rate passing in every run, 0: none
	Runs     []runResult `json:"runs"`
	PeakKB   int         `json:"peak_memory_kb"`
	// FrontPeakKB is drachtio-server's share of PeakKB (system ours-drachtio).
	FrontPeakKB int `json:"drachtio_peak_memory_kb,omitempty"`
}

type runResult struct {
	Rate   int        `json:"rate"`
	Pass   bool       `json:"pass"`
	Why    string     `json:"why,omitempty"`
	Sipp   sippResult `json:"sipp"`
	SUTCPU float64    `json:"sut_cpu_s"`
	// FrontCPU is drachtio-server's share of SUTCPU (system ours-drachtio).
	FrontCPU    float64 `json:"drachtio_cpu_s,omitempty"`
	MySQLCPU    float64 `json:"mysql_cpu_s"`
	RedisCPU    float64 `json:"redis_cpu_s"`
	HookCPU     float64 `json:"driver_cpu_s"` // this process: the webhook server
	Wall        float64 `json:"wall_s"`
	PeakKB      int     `json:"peak_memory_kb"`
	FrontPeakKB int     `json:"drachtio_peak_memory_kb,omitempty"`
	LoadAfter   string  `json:"load_after"`
	// Redis commands (INFO commandstats) and MySQL SELECTs (Com_select)
	// the run caused, in total and by command.
	RedisCommands int            `json:"redis_commands"`
	RedisByCmd    map[string]int `json:"redis_commands_by_name,omitempty"`
	// RedisReads is INFO stats total_reads_processed: the server's reads of
	// client requests, about one per round trip (a pipeline arrives in one).
	RedisReads   int `json:"redis_reads"`
	MySQLSelects int `json:"mysql_selects"`
	// Switches is the context switches of the system's threads over the run;
	// Syscalls its system calls (perf stat, 0 without perf).
	Switches int `json:"context_switches"`
	Syscalls int `json:"syscalls,omitempty"`
}

type memResult struct {
	System        string `json:"system"`
	Registrations int    `json:"registrations"`
	Rate          int    `json:"rate"`
	Successful    int    `json:"successful"`
	MemKBAtEnd    int    `json:"memory_kb_at_end"`
	MemKBSettled  int    `json:"memory_kb_5s_later"`
	PeakKB        int    `json:"peak_memory_kb"`
	RedisBytes    int    `json:"redis_used_memory_delta"`
	Bindings      int    `json:"bindings"`
}

func (b *bench) run(ctx context.Context) error {
	if b.out == "" {
		return errors.New("-out is required")
	}
	for _, p := range []*string{&b.out, &b.scenarios, &b.clockShim, &b.serviceBin, &b.kamCfg, &b.drachtioBin, &b.originalDir} {
		if *p == "" {
			continue
		}
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	b.res.Date = time.Now().UTC().Format(time.RFC3339)
	b.res.LoadBefore = loadAvg()
	b.res.Machine = machine()
	b.res.Versions = versions(b.serviceBin)
	b.res.Settings = fmt.Sprintf("step %s, %d sipp processes, %d users, rate ladder %s, %d runs of the highest passing rate, Kamailio %d UDP workers",
		b.step, b.procs, b.users, b.rates, b.repeats, b.kamWorkers)
	if b.drachtioBin != "" {
		b.res.Versions = append(b.res.Versions, "drachtio-server "+firstLine(b.drachtioBin, "--version"))
		b.res.Settings += ", drachtio-server log level " + b.drachtioLogLevel
	}
	if b.originalDir != "" && b.drachtioBin != "" {
		b.res.Versions = append(b.res.Versions, originalVersion(b.originalDir))
	}

	// The webhook server of the webhook-path accounts, in this process (its CPU is reported).
	realms := map[string]map[string]authserver.User{}
	for i := 1; i <= b.users; i++ {
		r := hookRealm(i)
		if realms[r] == nil {
			realms[r] = map[string]authserver.User{}
		}
		realms[r][userName(i)] = authserver.User{Password: password(i)}
	}
	hook := authserver.New(authserver.Options{Users: realms, DisableRecording: true})
	hctx, hstop := context.WithCancel(ctx)
	defer hstop()
	go func() {
		if err := hook.ListenAndServe(hctx, fmt.Sprintf("127.0.0.1:%d", b.hookPort)); err != nil {
			b.log.Error("webhook server", "err", err)
		}
	}()

	mysqld := readPid(filepath.Join(b.stateDir, "mysql", "mysqld.pid"))
	redisPid := readPid(filepath.Join(b.stateDir, "redis", "redis.pid"))
	if mysqld == 0 || redisPid == 0 {
		return fmt.Errorf("no mysqld/redis pid under %s", b.stateDir)
	}
	db := dbPids{mysql: mysqld, redis: redisPid}

	ours := fmt.Sprintf("127.0.0.1:%d", b.ourPort)
	kam := fmt.Sprintf("127.0.0.1:%d", b.kamPort)
	timeout := b.step + 6*time.Second

	type system struct {
		name, target string
		start        func(context.Context) (sut, func(), error)
	}
	systems := []system{{"ours", ours, b.startOurs}, {"kamailio", kam, func(ctx context.Context) (sut, func(), error) {
		return b.startKamailio(ctx, "kamailio")
	}}, {kamailioWT, kam, func(ctx context.Context) (sut, func(), error) {
		return b.startKamailio(ctx, kamailioWT)
	}}}
	// The same service as a drachtio-server client: sipp sends to drachtio's SIP port.
	switch {
	case b.drachtioBin != "":
		systems = append(systems, system{drachtioSystem, fmt.Sprintf("127.0.0.1:%d", b.drachtioSIPPort), b.startDrachtio})
	case b.only != "" && strings.Contains(","+b.only, ","+drachtioSystem+"-"):
		return errors.New("-only names a " + drachtioSystem + " case but -drachtio (a drachtio-server binary) is not set")
	default:
		b.log.Warn("no drachtio-server binary (-drachtio): the " + drachtioSystem + " cases are left out")
	}
	// The original (Node.js) sidecar, behind the same drachtio-server.
	switch {
	case b.originalDir != "" && b.drachtioBin != "":
		systems = append(systems, system{originalSystem, fmt.Sprintf("127.0.0.1:%d", b.drachtioSIPPort), b.startOriginal})
	case b.only != "" && strings.Contains(","+b.only, ","+originalSystem+"-"):
		return errors.New("-only names an " + originalSystem + " case but -original (a directory) or -drachtio is not set")
	}
	if b.baselineBin != "" {
		// The same service at an earlier revision, on the same port, run after the others.
		systems = append(systems, system{"before", ours, func(ctx context.Context) (sut, func(), error) {
			return b.startService(ctx, "before", b.baselineBin, nil)
		}})
	}
	for _, sys := range systems {
		cases := []struct{ path, scenario string }{{"clients", "register-auth"}, {"webhook", "register-auth"},
			{"clients", "reregister-cached"}, {"clients", "unregister"}}
		var todo []struct{ path, scenario string }
		for _, c := range cases {
			if (sys.name == "kamailio" || sys.name == kamailioWT) && c.path == "webhook" {
				continue // Kamailio has no registration webhook (the baseline, "before", has)
			}
			if sys.name == originalSystem && c.scenario != "register-auth" {
				continue // full registrations only (see forgetBindings)
			}
			name := caseName(sys.name, c.path, c.scenario)
			if sys.name == originalSystem && b.only == "" && name != originalSystem+"-webhook-register-auth" {
				continue // the webhook path by default; the clients path on request (-only)
			}
			if (sys.name == drachtioSystem || sys.name == kamailioWT) && b.only == "" && name != sys.name+"-clients-register-auth" {
				continue // the front's (the write's) cost shows in full registrations; the others on request (-only)
			}
			if b.want(name) {
				todo = append(todo, c)
			}
		}
		if len(todo) == 0 {
			continue
		}
		for _, c := range todo {
			// A fresh process per case: its peak memory and CPU are its own,
			// not what an earlier case's overload steps left behind.
			s, stop, err := sys.start(ctx)
			if err != nil {
				return err
			}
			csvs, err := writeCSVs(b.out, c.path, 1, b.users, b.procs)
			if err != nil {
				stop()
				return err
			}
			if c.scenario == "reregister-cached" {
				// Preload: every user registered from its own sipp process's source.
				b.log.Info("preload", "system", sys.name, "users", b.users)
				if _, err := b.runSipp(ctx, caseName(sys.name, c.path, "preload"), load{Scenario: "reregister-cached.xml", Target: sys.target,
					CSVs: csvs, Rate: 2000, Calls: b.users, Timeout: timeout + time.Duration(b.users/2000)*time.Second}); err != nil {
					stop()
					return err
				}
			}
			cr := b.step1(ctx, s, db, hook, caseName(sys.name, c.path, c.scenario), sys.target, c.scenario, csvs, timeout)
			cr.System, cr.Path, cr.Scenario = sys.name, c.path, c.scenario
			b.res.Cases = append(b.res.Cases, cr)
			stop()
			if err := b.write(); err != nil {
				return err
			}
		}
	}
	for _, sys := range systems {
		if b.memUsers == 0 || !b.wantMem(sys.name) {
			continue
		}
		m, err := b.memory(ctx, sys.name, sys.target, sys.start, timeout)
		if err != nil {
			return err
		}
		b.res.Memory = append(b.res.Memory, m)
		if err := b.write(); err != nil {
			return err
		}
	}
	return b.write()
}

func caseName(system, path, scenario string) string { return system + "-" + path + "-" + scenario }

type dbPids struct{ mysql, redis int }

// maxRate caps the climb beyond the ladder (sipp cannot drive more from 2 cores anyway);
// minRate is where the descent below a failing ladder bottom stops.
const maxRate, minRate = 64000, 25

// step1 climbs the rate ladder for one case: the ladder (halving below its bottom when that
// fails), then doubling past its top until a rate fails, bisection between the last pass
// and the first failure (to within an eighth), then the highest passing rate is run again
// until it has passed b.repeats times (stepping down when a repeat fails).
func (b *bench) step1(ctx context.Context, s sut, db dbPids, hook *authserver.Server, name, target, scenario string, csvs []string, timeout time.Duration) caseResult {
	cr := caseResult{Name: name}
	var ladder []int
	for _, r := range strings.Split(b.rates, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(r)); err == nil && n > 0 {
			ladder = append(ladder, n)
		}
	}
	passes := map[int]int{}
	failed := map[int]bool{}
	one := func(rate int) bool {
		rr := b.measure(ctx, s, db, fmt.Sprintf("%s-%d-%d", name, rate, len(cr.Runs)), load{Scenario: scenario + ".xml", Target: target,
			CSVs: csvs, Rate: rate, Calls: rate * int(b.step.Seconds()), Timeout: timeout})
		cr.Runs = append(cr.Runs, rr)
		cr.PeakKB, cr.FrontPeakKB = max(cr.PeakKB, rr.PeakKB), max(cr.FrontPeakKB, rr.FrontPeakKB)
		b.log.Info("run", "case", name, "rate", rate, "pass", rr.Pass, "why", rr.Why, "achieved", int(rr.Sipp.Achieved),
			"p50_ms", rr.Sipp.P50, "p99_ms", rr.Sipp.P99, "sut_cpu_s", rr.SUTCPU, "sipp_cpu_s", rr.Sipp.CPUSeconds)
		if rr.Pass {
			passes[rate]++
		} else {
			failed[rate] = true
		}
		return rr.Pass
	}
	lastPass, firstFail := 0, 0
	for _, r := range ladder {
		if ctx.Err() != nil {
			return cr
		}
		if !one(r) {
			firstFail = r
			break
		}
		lastPass = r
	}
	// The ladder's bottom failed (a much slower system, the original): step down,
	// halving, until a rate passes, so that it still gets a figure.
	for lastPass == 0 && firstFail > minRate && ctx.Err() == nil {
		r := max(firstFail/2/minRate*minRate, minRate)
		if one(r) {
			lastPass = r
		} else {
			firstFail = r
		}
	}
	// The ladder's top passed: climb on (doubling) until a rate fails, so
	// that no figure reads "at least the ladder top".
	for firstFail == 0 && lastPass > 0 && lastPass < maxRate && ctx.Err() == nil {
		r := min(lastPass*2, maxRate)
		if !one(r) {
			firstFail = r
			break
		}
		lastPass = r
	}
	// Bisect between the last pass and the first failure until the gap is
	// within an eighth of the passing rate (at least 250/s, 25/s below 1,000/s).
	for firstFail > 0 && lastPass > 0 && ctx.Err() == nil {
		unit := 250
		if lastPass < 1000 {
			unit = 25
		}
		if firstFail-lastPass <= max(unit, lastPass/8) {
			break
		}
		mid := (lastPass + firstFail) / 2 / unit * unit
		if mid <= lastPass || mid >= firstFail {
			break
		}
		if one(mid) {
			lastPass = mid
		} else {
			firstFail = mid
		}
	}
	// Repeats, stepping down through the rates that passed.
	for cand := lastPass; cand > 0 && ctx.Err() == nil; {
		for passes[cand] < b.repeats && !failed[cand] {
			one(cand)
		}
		if !failed[cand] {
			cr.MaxRate = cand
			break
		}
		next := 0
		for r := range passes {
			if r < cand && r > next {
				next = r
			}
		}
		cand = next
	}
	return cr
}

// measure runs one load and samples the CPU of everything involved.
func (b *bench) measure(ctx context.Context, s sut, db dbPids, name string, l load) runResult {
	if s.name == originalSystem {
		if err := b.forgetBindings(); err != nil {
			b.log.Error("run", "case", name, "err", err)
		}
	}
	redis0, reads0 := b.redisCommandStats()
	sel0 := b.mysqlSelects()
	c0, f0, m0, r0, h0 := s.cpu(), s.frontCPU(), procCPU(db.mysql), procCPU(db.redis), procCPU(os.Getpid())
	sw0 := s.switches()
	var sys *perfRun
	if b.countSyscalls {
		sys = countSyscalls(ctx, s.pids())
	}
	rec := b.recordProfile(ctx, s, name)
	peak := samplePeak(ctx, s, 250*time.Millisecond)
	t0 := time.Now()
	res, err := b.runSipp(ctx, name, l)
	rr := runResult{Rate: l.Rate, Sipp: res, Wall: time.Since(t0).Seconds(), PeakKB: peak.Stop(), FrontPeakKB: peak.Front()}
	_ = rec.stop()
	rr.Switches, rr.Syscalls = s.switches()-sw0, syscalls(sys)
	rr.SUTCPU, rr.FrontCPU = s.cpu()-c0, s.frontCPU()-f0
	rr.MySQLCPU, rr.RedisCPU, rr.HookCPU = procCPU(db.mysql)-m0, procCPU(db.redis)-r0, procCPU(os.Getpid())-h0
	rr.LoadAfter = loadAvg()
	rr.RedisByCmd = map[string]int{}
	redis1, reads1 := b.redisCommandStats()
	for name, n := range redis1 {
		if d := n - redis0[name]; d > 0 {
			rr.RedisByCmd[name] = d
			rr.RedisCommands += d
		}
	}
	// The second INFO's own read is not the system's.
	rr.RedisReads = max(reads1-reads0-1, 0)
	rr.MySQLSelects = b.mysqlSelects() - sel0
	var why []string
	if err != nil {
		why = append(why, err.Error())
	}
	// Each sipp process makes l.Calls/procs calls: count what was really asked for
	// (a rate*step not divisible by the process count would otherwise fail a clean run).
	calls := l.Calls
	if procs := len(l.CSVs); procs > 0 {
		calls = l.Calls / procs * procs
	}
	if failedCalls := calls - res.Successful; float64(failedCalls) >= 0.001*float64(calls) {
		why = append(why, fmt.Sprintf("%d of %d calls failed", failedCalls, calls))
	}
	if res.Achieved < 0.95*float64(l.Rate) {
		why = append(why, fmt.Sprintf("achieved %.0f/s", res.Achieved))
	}
	if float64(res.RetransAfterWarmup) > 0.001*float64(l.Calls) {
		why = append(why, fmt.Sprintf("%d retransmissions after 5 s", res.RetransAfterWarmup))
	}
	rr.Pass = len(why) == 0
	rr.Why = strings.Join(why, "; ")
	if !rr.Pass {
		cooldown(ctx, s)
	}
	return rr
}

// recordProfile starts `perf record -g` of s for one run when -perf-record
// is set (nil otherwise, or without perf): a profile of kernel and user
// stacks, which pprof does not have. Sampling costs some CPU: runs recorded
// this way are for profiles, not for the figures.
func (b *bench) recordProfile(ctx context.Context, s sut, name string) *perfRun {
	if !b.perfRecord {
		return nil
	}
	dir := filepath.Join(b.out, "perf")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil
	}
	file := filepath.Join(dir, name+".data") // name is unique per run: case, rate, step
	p := startPerf(ctx, s.pids(), "record", "-q", "-F", "999", "-g", "-o", file)
	if p == nil {
		b.log.Warn("perf record did not start (perf missing or not allowed)", "case", name)
	}
	return p
}

// cooldown waits (at most 20 s) until the system under test is idle after an
// overloaded run, so that its backlog does not count against the next run.
func cooldown(ctx context.Context, s sut) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c0 := s.cpu()
		time.Sleep(500 * time.Millisecond)
		if s.cpu()-c0 < 0.05 { // under 10% of a core
			return
		}
	}
}

// startOurs starts the Go service with real Redis and MariaDB.
func (b *bench) startOurs(ctx context.Context) (sut, func(), error) {
	return b.startService(ctx, "ours", b.serviceBin, nil)
}

// startService starts a build of the Go service (bin) as system name: its native
// front on -our-port, or, with frontEnv (DRACHTIO_*), as a client of drachtio-server.
func (b *bench) startService(ctx context.Context, name, bin string, frontEnv []string) (sut, func(), error) {
	logf := filepath.Join(b.out, name+".log")
	lf, err := os.Create(logf)
	if err != nil {
		return sut{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, bin)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"),
		"JAMBONES_MYSQL_HOST=" + b.mysqlHost, "JAMBONES_MYSQL_PORT=" + strconv.Itoa(b.mysqlPort),
		"JAMBONES_MYSQL_USER=" + b.mysqlUser, "JAMBONES_MYSQL_PASSWORD=" + b.mysqlPass,
		"JAMBONES_MYSQL_DATABASE=" + b.mysqlDB,
		"JAMBONES_REDIS_HOST=" + b.redisHost, "JAMBONES_REDIS_PORT=" + strconv.Itoa(b.redisPort),
		"JAMBONES_CLUSTER_ID=bench", "ENCRYPTION_SECRET=" + b.secret, "JAMBONES_LOGLEVEL=info",
		"SBC_SOCKET_PATH=" + filepath.Join(b.out, name+"-cli.sock"),
		// The per-IP limits protect a real SBC; sipp sends everything from one
		// IP. The per-AoR ban stays on (its default), as in production: every
		// authenticated REGISTER reads its AoR's ban.
		"SIP_RATE_LIMIT=0", "AUTH_FAILURE_LIMIT=0",
		"NONCE_SECRET=bench-nonce-secret", "PPROF=" + os.Getenv("PPROF"), "HTTP_PORT=" + os.Getenv("BENCH_HTTP_PORT"),
	}
	if name == "before" {
		cmd.Env = append(cmd.Env, strings.Fields(b.baselineEnv)...)
	}
	ready := "native front listening"
	if frontEnv == nil {
		cmd.Env = append(cmd.Env, "SIP_LISTEN=udp:127.0.0.1:"+strconv.Itoa(b.ourPort))
	} else {
		cmd.Env = append(cmd.Env, frontEnv...)
		ready = "drachtio: connected" // authenticated and routes sent
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		cancel()
		return sut{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	stop := func() {
		cancel()
		_ = cmd.Wait()
		lf.Close()
	}
	if err := waitLog(ctx, logf, ready, 15*time.Second); err != nil {
		stop()
		return sut{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	return sut{name: name, pid: cmd.Process.Pid}, stop, nil
}

// drachtioSystem is the system name of the service behind drachtio-server.
const drachtioSystem = "ours-drachtio"

// drachtioSecret is the control-port secret of the bench's drachtio-server.
const drachtioSecret = "bench-drachtio-secret"

// drachtioClientEnv is the environment telling a drachtio client (the service, the
// original) where the bench's drachtio-server is.
func (b *bench) drachtioClientEnv() []string {
	return []string{"DRACHTIO_HOST=127.0.0.1", "DRACHTIO_PORT=" + strconv.Itoa(b.drachtioPort), "DRACHTIO_SECRET=" + drachtioSecret}
}

// startDrachtio starts drachtio-server (SIP on -drachtio-sip-port, control port
// -drachtio-port) and the Go service connected to it as its client; the system's
// CPU and memory are both processes', drachtio-server's also on their own.
func (b *bench) startDrachtio(ctx context.Context) (sut, func(), error) {
	front, stopServer, err := b.startDrachtioServer(ctx)
	if err != nil {
		return sut{}, nil, err
	}
	s, stopService, err := b.startService(ctx, drachtioSystem, b.serviceBin, b.drachtioClientEnv())
	if err != nil {
		stopServer()
		return sut{}, nil, err
	}
	s.front = front
	return s, func() { stopService(); stopServer() }, nil
}

// startDrachtioServer starts drachtio-server and returns once its control port
// accepts connections: its pid and how to stop it.
func (b *bench) startDrachtioServer(ctx context.Context) (int, func(), error) {
	control := fmt.Sprintf("127.0.0.1:%d", b.drachtioPort)
	conf := filepath.Join(b.out, "drachtio.conf.xml")
	xml := fmt.Sprintf(`<drachtio>
  <admin port="%d" secret="%s">127.0.0.1</admin>
  <sip><contacts><contact>sip:127.0.0.1:%d;transport=udp</contact></contacts></sip>
  <cdrs>false</cdrs>
  <logging><console/><loglevel>%s</loglevel><sofia-loglevel>0</sofia-loglevel></logging>
</drachtio>
`, b.drachtioPort, drachtioSecret, b.drachtioSIPPort, b.drachtioLogLevel)
	if err := os.WriteFile(conf, []byte(xml), 0o600); err != nil {
		return 0, nil, fmt.Errorf("drachtio-server: %w", err)
	}
	logf := filepath.Join(b.out, "drachtio.log")
	lf, err := os.Create(logf)
	if err != nil {
		return 0, nil, fmt.Errorf("drachtio-server: %w", err)
	}
	cmd := exec.Command(b.drachtioBin, "-f", conf)
	cmd.Dir = b.out
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return 0, nil, fmt.Errorf("drachtio-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopServer := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		lf.Close()
	}
	// Ready when its control port accepts connections (the service retries anyway).
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", control, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			lf.Close()
			return 0, nil, fmt.Errorf("drachtio-server exited during start-up, see %s", logf)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopServer()
			return 0, nil, fmt.Errorf("drachtio-server not listening on %s, see %s", control, logf)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd.Process.Pid, stopServer, nil
}

// kamailioWT is Kamailio with usrloc writing every binding through to
// MySQL (db_mode 1, the `location` table): the same configuration otherwise.
// Not the reference (that keeps bindings in memory only), but a registrar
// that, like this service, writes each binding to a database before it
// answers.
const kamailioWT = "kamailio-wt"

// startKamailio starts Kamailio in the foreground (-DD), in its own process
// group; system kamailioWT defines WRITE_THROUGH for the configuration and
// empties the location table first.
func (b *bench) startKamailio(ctx context.Context, system string) (sut, func(), error) {
	logf := filepath.Join(b.out, system+".log")
	lf, err := os.Create(logf)
	if err != nil {
		return sut{}, nil, fmt.Errorf("kamailio: %w", err)
	}
	url := fmt.Sprintf(`DBURL="mysql://root:%s@%s:%d/kamailio"`, b.mysqlRootPass, b.mysqlHost, b.mysqlPort)
	args := []string{"-DD", "-E", "-f", b.kamCfg, "-l", fmt.Sprintf("udp:127.0.0.1:%d", b.kamPort),
		"-n", strconv.Itoa(b.kamWorkers), "-m", "512", "-M", "16", "-w", b.out, "-A", url}
	if system == kamailioWT {
		out, err := exec.CommandContext(ctx, "mysql", "--no-defaults", "-h", b.mysqlHost, "-P", strconv.Itoa(b.mysqlPort), "-uroot",
			"-p"+b.mysqlRootPass, "kamailio", "-e", "TRUNCATE TABLE location").CombinedOutput()
		if err != nil {
			return sut{}, nil, fmt.Errorf("kamailio: emptying location: %w: %s", err, out)
		}
		args = append(args, "-A", "WRITE_THROUGH")
	}
	cmd := exec.Command("kamailio", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return sut{}, nil, fmt.Errorf("kamailio: %w", err)
	}
	pid := cmd.Process.Pid
	stop := func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		lf.Close()
	}
	// Ready when the UDP workers exist (main + workers + timers).
	deadline := time.Now().Add(15 * time.Second)
	for len(group(pid)) < b.kamWorkers+2 {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			stop()
			return sut{}, nil, fmt.Errorf("kamailio did not start, see %s", logf)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return sut{name: system, pid: pid, group: true}, stop, nil
}

// memory registers memUsers distinct users (clients path) and reads the memory
// right after and 5 s later, when the UDP transactions kept for Timer J (2 s) are gone.
func (b *bench) memory(ctx context.Context, system, target string, start func(context.Context) (sut, func(), error), timeout time.Duration) (memResult, error) {
	m := memResult{System: system, Registrations: b.memUsers, Rate: b.memRate}
	csvs, err := writeCSVs(b.out, "clients", 1, b.memUsers, b.procs)
	if err != nil {
		return m, err
	}
	if system == originalSystem {
		if err := b.forgetBindings(); err != nil {
			return m, err
		}
	}
	redis0 := b.redisUsedMemory()
	s, stop, err := start(ctx)
	if err != nil {
		return m, err
	}
	defer stop()
	peak := samplePeak(ctx, s, 250*time.Millisecond)
	res, err := b.runSipp(ctx, "mem-"+system, load{Scenario: "register-auth.xml", Target: target, CSVs: csvs,
		Rate: b.memRate, Calls: b.memUsers, Timeout: timeout + time.Duration(b.memUsers/b.memRate)*time.Second})
	if err != nil {
		return m, err
	}
	m.Successful = res.Successful
	m.MemKBAtEnd = s.memKB()
	if system == "ours" || system == drachtioSystem || system == originalSystem {
		m.RedisBytes = b.redisUsedMemory() - redis0
		m.Bindings = b.redisInt("ZCARD", "active-user")
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	m.MemKBSettled = s.memKB()
	m.PeakKB = peak.Stop()
	b.log.Info("memory", "system", system, "ok", m.Successful, "end_kb", m.MemKBAtEnd, "settled_kb", m.MemKBSettled, "redis_bytes", m.RedisBytes)
	return m, nil
}

func (b *bench) redisUsedMemory() int {
	out, err := exec.Command("redis-cli", "-h", b.redisHost, "-p", strconv.Itoa(b.redisPort), "INFO", "memory").Output()
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// redisCommandStats is INFO commandstats: calls by command name (the INFO
// calls of the measurement itself are left out), and INFO stats'
// total_reads_processed, in one INFO.
func (b *bench) redisCommandStats() (map[string]int, int) {
	out, err := exec.Command("redis-cli", "-h", b.redisHost, "-p", strconv.Itoa(b.redisPort), "INFO", "commandstats", "stats").Output()
	stats := map[string]int{}
	if err != nil {
		return stats, 0
	}
	reads := 0
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_reads_processed:"); ok {
			reads, _ = strconv.Atoi(v)
			continue
		}
		// cmdstat_get:calls=12,usec=...
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		if name == "info" {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				stats[name], _ = strconv.Atoi(v)
			}
		}
	}
	return stats, reads
}

// mysqlSelects is the server's Com_select counter (every SELECT, whoever sent it).
func (b *bench) mysqlSelects() int {
	out, err := exec.Command("mysql", "--no-defaults", "-h", b.mysqlHost, "-P", strconv.Itoa(b.mysqlPort), "-uroot",
		"-p"+b.mysqlRootPass, "-N", "-B", "-e", "SHOW GLOBAL STATUS LIKE 'Com_select'").Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func (b *bench) redisInt(args ...string) int {
	out, err := exec.Command("redis-cli", append([]string{"-h", b.redisHost, "-p", strconv.Itoa(b.redisPort)}, args...)...).Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func waitLog(ctx context.Context, path, needle string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), needle) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%q not logged within %s, see %s", needle, d, path)
}

func readPid(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func machine() string {
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	rel := make([]byte, 0, 65)
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	memKB := statusKBFile("/proc/meminfo", "MemTotal")
	return fmt.Sprintf("%s, %d CPUs, %d MB RAM, Linux %s", model, numCPU(), memKB/1024, rel)
}

// statusKBFile reads the number of a "Key: N" or "Key: N kB" line of a
// /proc file (status, smaps_rollup, meminfo).
func statusKBFile(path, key string) int {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "\nprocessor") + 1
}

func versions(service string) []string {
	var v []string
	run := firstLine
	v = append(v, "sbc-sip-sidecar "+firstLine(service, "version"))
	v = append(v, run("kamailio", "-v"))
	v = append(v, run("sh", "-c", "sipp -v 2>&1 | grep -m1 -i 'sipp v'"))
	v = append(v, run("redis-server", "--version"))
	v = append(v, run("sh", "-c", "(mariadbd --version || /usr/sbin/mariadbd --version) 2>/dev/null"))
	v = append(v, run("go", "version"))
	return v
}

// firstLine is the first line a command prints (its version).
func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
