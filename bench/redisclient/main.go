// Command redisclient compares Redis clients on the commands of one full
// registration as the service sends them (issue 15, item 3): go-redis v9
// configured as internal/redisconn does, against rueidis with its
// auto-pipelining in several settings. Per registration it reports this
// process's CPU time (getrusage), wall latency p50/p99, heap allocations,
// syscalls (perf, raw_syscalls:sys_enter, in a separate pass) and the
// Redis server's reads and CPU (INFO deltas). Method and results:
// docs/performance.md, "Redis client: go-redis vs rueidis (issue 15)".
//
//	nstest <name> go run ./bench/redisclient -regs 10000 -repeats 3
//
// It needs a redis-server it may fill (TEST_REDIS_ADDR, or -addr); it
// writes only keys of the forms the service writes, plus nonce claims that
// expire after a minute.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

const (
	activeUsers = store.ActiveUsers
	channel     = "bench:registration-events"
	nonceTTL    = time.Minute
	bindingTTL  = time.Hour
	recordTTL   = bindingTTL + 5*time.Minute
)

// user holds the keys and values of one AoR, built once so that both
// clients get the same strings and only the clients' own work differs.
type user struct {
	userKey, banKey, realmKey, recordKey string
	payload, record, event               []byte
}

func makeUsers(n int) []user {
	us := make([]user, n)
	for i := range us {
		realm := "realm" + strconv.Itoa(i%50) + ".example.com"
		aor := "u" + strconv.Itoa(i) + "@" + realm
		contact := "sip:" + aor[:strings.IndexByte(aor, '@')] + "@192.0.2." + strconv.Itoa(i%250+1) + ":5060;transport=udp"
		// The sizes of the service's values: binding JSON ~330 bytes,
		// event ~300, its record ~350.
		us[i] = user{
			userKey:   store.UserKey(aor),
			banKey:    "bench:ban:" + aor,
			realmKey:  store.RealmKey(realm),
			recordKey: channel + ":binding:" + aor,
			payload:   []byte(`{"contact":"` + contact + `","sbcAddress":"198.51.100.10:5060","privateSbcAddress":"10.0.0.10:5060","protocol":"udp","proxy":"sip:192.0.2.1:5060","allow_direct_app_calling":true,"allow_direct_queue_calling":true,"allow_direct_user_calling":true,"expiryTime":1800000000000,"callId":"a84b4c76e66710","cseq":2}`),
			event:     []byte(`{"type":"register","aor":"` + aor + `","contact":"` + contact + `","expires":3600,"bindingExpiry":1800000000000,"sbcAddress":"198.51.100.10:5060","protocol":"udp","time":1800000000000,"instance":"bench"}`),
		}
		us[i].record = []byte(`{"expiry":1800000000000,"event":` + string(us[i].event) + `}`)
	}
	return us
}

func main() {
	addr := flag.String("addr", envOr("TEST_REDIS_ADDR", "127.0.0.1:6379"), "redis-server host:port")
	regs := flag.Int("regs", 10000, "registrations per measured run")
	warm := flag.Int("warm", 1000, "registrations before each measured run (connections, script cache)")
	repeats := flag.Int("repeats", 3, "measured runs per client and concurrency")
	concs := flag.String("conc", "1,8,64,256", "concurrencies (goroutines registering back to back)")
	rates := flag.String("rate", "", "instead of -conc: registrations per second, each started on time in a goroutine of its own (open loop, as requests reach the service)")
	only := flag.String("clients", "", "comma-separated client names (default: all)")
	syscalls := flag.Bool("syscalls", true, "one more run per case under perf stat -e raw_syscalls:sys_enter")
	flag.Parse()

	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fail(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		fail(err)
	}
	cfg := config.Redis{Host: host, Port: p, DialTimeout: 500 * time.Millisecond, Timeout: time.Second}
	var cs []client
	for _, c := range clients() {
		if *only == "" || contains(strings.Split(*only, ","), c.name) {
			cs = append(cs, c)
		}
	}
	var levels []load
	list, flagName := *concs, "-conc"
	if *rates != "" {
		list, flagName = *rates, "-rate"
	}
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail(fmt.Errorf("%s %q: %v", flagName, s, err))
		}
		if *rates != "" {
			levels = append(levels, load{rate: n})
		} else {
			levels = append(levels, load{conc: n})
		}
	}
	admin, err := newAdmin(*addr)
	if err != nil {
		fail(err)
	}
	defer admin.close()

	fmt.Printf("# redisclient %s, GOMAXPROCS=%d, %s, redis %s, %d registrations per run\n",
		time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), runtime.Version(), admin.version(), *regs)
	for _, c := range cs {
		fmt.Printf("# %-18s %s\n", c.name, c.what)
	}
	us := makeUsers(10000)
	res := map[key][]result{}
	// Repeats round-robin over the cases, so that a noisy moment of the
	// shared machine spreads over all of them instead of one.
	for r := 0; r < *repeats; r++ {
		for _, n := range levels {
			for _, c := range cs {
				x, err := runCase(c, cfg, admin, us, n, *warm, *regs, false)
				if err != nil {
					fail(fmt.Errorf("%s %s: %w", c.name, n, err))
				}
				res[key{c.name, n}] = append(res[key{c.name, n}], x)
				fmt.Printf("run %d %-18s %-12s %s\n", r+1, c.name, n.String()+":", x)
			}
		}
	}
	sys := map[key]float64{}
	if *syscalls {
		for _, n := range levels {
			for _, c := range cs {
				x, err := runCase(c, cfg, admin, us, n, *warm, *regs, true)
				if err != nil || x.failed > 0 {
					fmt.Fprintf(os.Stderr, "syscalls %s %s: not counted (%d failed, %v)\n", c.name, n, x.failed, err)
					continue
				}
				sys[key{c.name, n}] = x.syscalls
			}
		}
	}
	report(os.Stdout, cs, levels, res, sys)
}

type key struct {
	client string
	load   load
}

// load is how registrations are started: conc goroutines back to back
// (closed loop), or rate a second, each on time (open loop).
type load struct{ conc, rate int }

func (l load) String() string {
	if l.rate > 0 {
		return fmt.Sprintf("rate %d/s", l.rate)
	}
	return fmt.Sprintf("conc %d", l.conc)
}

// runCase opens a fresh client, warms it up and measures regs
// registrations under load l.
func runCase(c client, cfg config.Redis, admin *admin, us []user, l load, warm, regs int, syscalls bool) (result, error) {
	rc, err := c.open(cfg)
	if err != nil {
		return result{}, err
	}
	defer rc.close()
	ctx := context.Background()
	if _, failed, err := drive(ctx, rc, us, l, warm); failed == warm {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	runtime.GC()
	var perf *perfStat
	if syscalls {
		if perf, err = startPerf(); err != nil {
			return result{}, err
		}
	}
	before, err := admin.stats()
	if err != nil {
		return result{}, err
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	t0 := time.Now()
	lat, failed, err := drive(ctx, rc, us, l, regs)
	wall := time.Since(t0)
	cpu1 := cpuTime()
	runtime.ReadMemStats(&ms1)
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%s %s: %d of %d registrations failed, first: %v\n", c.name, l, failed, regs, err)
	}
	after, err := admin.stats()
	if err != nil {
		return result{}, err
	}
	x := result{
		regs:      regs,
		perSec:    float64(regs) / wall.Seconds(),
		cpuUs:     float64((cpu1 - cpu0).Microseconds()) / float64(regs),
		allocs:    float64(ms1.Mallocs-ms0.Mallocs) / float64(regs),
		bytes:     float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(regs),
		serverCPU: (after.cpu - before.cpu) * 1e6 / float64(regs),
		reads:     float64(after.reads-before.reads) / float64(regs),
		writes:    float64(after.writes-before.writes) / float64(regs),
		failed:    failed,
	}
	x.p50, x.p99 = percentiles(lat)
	var busy time.Duration
	for _, d := range lat {
		busy += d
	}
	x.inflight = float64(busy) / float64(wall)
	if perf != nil {
		n, err := perf.stop()
		if err != nil {
			return result{}, err
		}
		x.syscalls = float64(n) / float64(regs)
	}
	return x, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "redisclient:", err)
	os.Exit(1)
}
