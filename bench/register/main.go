// Command register is the driver of bench/run.sh: it generates the benchmark users
// (gen) and measures REGISTER throughput, latency, CPU and memory of the Go service
// and of Kamailio with the same sipp scenarios and stepping (run), writing
// results.json and RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: register gen|run [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "gen":
		fs := flag.NewFlagSet("gen", flag.ExitOnError)
		dir := fs.String("out", ".", "directory of jambones.sql and kamailio.sql")
		n := fs.Int("users", 10000, "clients / subscribers")
		kn := fs.Int("kamailio-users", 0, "subscribers (at least -users)")
		secret := fs.String("secret", "", "ENCRYPTION_SECRET of clients.password")
		hook := fs.String("hook-url", "", "registration webhook URL of the webhook-path accounts (h000.hook.local ...)")
		_ = fs.Parse(os.Args[2:])
		err = writeSQL(*dir, *n, *kn, *secret, *hook)
	case "run":
		b := &bench{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
		fs := flag.NewFlagSet("run", flag.ExitOnError)
		b.flags(fs)
		_ = fs.Parse(os.Args[2:])
		err = b.run(ctx)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		os.Exit(1)
	}
}

// bench holds the configuration of one benchmark run and its results.
type bench struct {
	log                                   *slog.Logger
	out, scenarios, clockShim, serviceBin string
	baselineBin                           string
	baselineEnv                           string
	drachtioBin, drachtioLogLevel         string
	originalDir                           string
	drachtioPort, drachtioSIPPort         int
	kamCfg                                string
	mysqlHost, mysqlUser, mysqlPass       string
	mysqlDB, mysqlRootPass                string
	mysqlPort, redisPort                  int
	redisHost, stateDir                   string
	secret                                string
	ourPort, kamPort, hookPort            int
	sippBasePort, procs, users, memUsers  int
	memRate, repeats, kamWorkers          int
	step                                  time.Duration
	rates                                 string
	only                                  string
	commands                              string
	perfRecord, countSyscalls             bool

	res results
}

func (b *bench) flags(fs *flag.FlagSet) {
	fs.StringVar(&b.out, "out", "", "output directory")
	fs.StringVar(&b.scenarios, "scenarios", "bench/scenarios", "sipp scenario directory")
	fs.StringVar(&b.clockShim, "clockshim", "", "LD_PRELOAD library giving sipp a fine clock")
	fs.StringVar(&b.serviceBin, "service", "", "sbc-sip-sidecar binary")
	fs.StringVar(&b.baselineBin, "baseline-service", "", "sbc-sip-sidecar binary of an earlier revision, measured as the system \"before\" (optional)")
	fs.StringVar(&b.baselineEnv, "baseline-env", "", "space-separated NAME=value added to the baseline's environment (e.g. REGISTRATION_EVENTS=off)")
	fs.StringVar(&b.drachtioBin, "drachtio", "", "drachtio-server binary: the service is measured behind it too, as system "+drachtioSystem+" (optional)")
	fs.StringVar(&b.drachtioLogLevel, "drachtio-loglevel", "info", "drachtio-server log level")
	fs.StringVar(&b.originalDir, "original", "", "directory of the original Node.js sbc-sip-sidecar with its npm dependencies installed: measured behind -drachtio too, as system "+originalSystem+" (optional)")
	fs.IntVar(&b.drachtioPort, "drachtio-port", 17063, "control port of drachtio-server")
	fs.IntVar(&b.drachtioSIPPort, "drachtio-sip-port", 17062, "SIP port of drachtio-server")
	fs.StringVar(&b.kamCfg, "kamailio-cfg", "bench/kamailio/kamailio.cfg", "Kamailio configuration")
	fs.StringVar(&b.mysqlHost, "mysql-host", "127.0.0.1", "")
	fs.IntVar(&b.mysqlPort, "mysql-port", 3306, "")
	fs.StringVar(&b.mysqlUser, "mysql-user", "", "")
	fs.StringVar(&b.mysqlPass, "mysql-password", "", "")
	fs.StringVar(&b.mysqlDB, "mysql-database", "", "")
	fs.StringVar(&b.mysqlRootPass, "mysql-root-password", "", "root over TCP, for Kamailio's database")
	fs.StringVar(&b.redisHost, "redis-host", "127.0.0.1", "")
	fs.IntVar(&b.redisPort, "redis-port", 6379, "")
	fs.StringVar(&b.stateDir, "state-dir", "", "scripts/test.sh TEST_STATE_DIR (pid files of mysqld and redis)")
	fs.StringVar(&b.secret, "secret", "", "ENCRYPTION_SECRET")
	fs.IntVar(&b.ourPort, "our-port", 17060, "SIP port of the Go service")
	fs.IntVar(&b.kamPort, "kamailio-port", 17061, "SIP port of Kamailio")
	fs.IntVar(&b.hookPort, "hook-port", 17050, "port of the registration webhook server")
	fs.IntVar(&b.sippBasePort, "sipp-port", 17100, "first local port of the sipp processes")
	fs.IntVar(&b.procs, "procs", 4, "sipp processes in parallel")
	fs.IntVar(&b.users, "users", 10000, "distinct users per scenario")
	fs.IntVar(&b.memUsers, "mem-users", 100000, "registrations for the memory measurement (0: skip)")
	fs.IntVar(&b.memRate, "mem-rate", 1000, "REGISTER rate of the memory measurement")
	fs.IntVar(&b.repeats, "repeats", 2, "runs of the highest passing rate")
	fs.IntVar(&b.kamWorkers, "kamailio-workers", 4, "Kamailio UDP worker processes")
	fs.DurationVar(&b.step, "step", 10*time.Second, "duration of one rate step")
	fs.StringVar(&b.rates, "rates", "1000,2000,4000,8000", "rate ladder (calls/s): climbed until a rate fails, then bisected once")
	fs.StringVar(&b.only, "only", "", "comma-separated subset of cases (e.g. ours-clients-register-auth,mem-ours)")
	fs.StringVar(&b.commands, "commands", "", "the commands that produced this run, for RESULTS.md")
	fs.BoolVar(&b.countSyscalls, "count-syscalls", false, "count every run's system calls of the system under test (perf stat; tracing them costs CPU: not for the CPU figures)")
	fs.BoolVar(&b.perfRecord, "perf-record", false, "record every run's CPU profile with kernel stacks (perf record -g) in <out>/perf/<run>.data")
}

// wantMem tells whether the memory measurement runs for system: ours by default,
// Kamailio when -only names mem-kamailio.
func (b *bench) wantMem(system string) bool {
	if b.only == "" {
		return system == "ours"
	}
	return b.want("mem-" + system)
}

func (b *bench) want(name string) bool {
	if b.only == "" {
		return true
	}
	for _, o := range strings.Split(b.only, ",") {
		if o == name {
			return true
		}
	}
	return false
}
