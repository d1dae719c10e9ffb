// Command faults measures how the service answers REGISTERs while Redis or
// MySQL is down: latency of the answers at a steady rate through a whole
// outage, goroutines and RSS of the service meanwhile, how soon the first
// registration succeeds once the backend is back, and whether the bindings
// written before the outage are intact. Run it through bench/faults/run.sh.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
)

const (
	realm    = "jambonz.org" // the test database's account with a registration webhook
	password = "pw"
	expires  = 300
	sipPort  = 15310
	httpPort = 15311
)

type options struct {
	bin       string
	mode      string
	rate      int
	outage    time.Duration
	phones    int
	redisPort int
	out       string
	work      string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "service binary")
	flag.StringVar(&o.mode, "mode", "redis,mysql", "outages to run: redis, mysql")
	flag.IntVar(&o.rate, "rate", 500, "REGISTERs per second during the run")
	flag.DurationVar(&o.outage, "outage", 60*time.Second, "length of each outage")
	flag.IntVar(&o.phones, "phones", 1000, "phones registered before the outage")
	flag.IntVar(&o.redisPort, "redis-port", 15320, "port of the driver's own redis-server")
	flag.StringVar(&o.out, "out", "", "write the results table (markdown) here too")
	flag.StringVar(&o.work, "work", os.TempDir(), "directory for logs and Redis data")
	flag.Parse()
	if o.bin == "" {
		log.Fatal("-bin is required")
	}
	var results []result
	for _, mode := range strings.Split(o.mode, ",") {
		r, err := run(o, strings.TrimSpace(mode))
		if err != nil {
			log.Fatalf("%s: %v", mode, err)
		}
		results = append(results, r)
	}
	table := report(o, results)
	fmt.Print(table)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(table), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// sample is one reading of the service's goroutines and RSS.
type sample struct {
	at         time.Time
	goroutines int
	rssKB      int
}

// answer is one load request's outcome.
type answer struct {
	class   string // new or cached
	sent    time.Time
	latency time.Duration
	code    int
}

type result struct {
	mode          string
	outageStart   time.Time
	outageEnd     time.Time // the backend is being started again
	backAt        time.Time // it answers
	answers       []answer  // sent during the outage
	unanswered    int       // sent during the outage, no answer 2 s after the run
	samples       []sample  // during the outage
	recovery      time.Duration
	recoveryTries int
	phones        int
	lost          int
	corrupted     int
	ttlBad        int
}

func run(o options, mode string) (result, error) {
	if mode != "redis" && mode != "mysql" {
		return result{}, fmt.Errorf("unknown mode %q", mode)
	}
	log.Printf("%s: starting", mode)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := result{mode: mode, phones: o.phones}

	// Backends: the driver's own redis-server, MySQL from scripts/test.sh
	// --services-only behind a proxy the driver can cut.
	rp, err := startRedis(filepath.Join(o.work, mode+"-redis"), o.redisPort)
	if err != nil {
		return res, err
	}
	defer rp.stop()
	mysqlPort, err := strconv.Atoi(os.Getenv("TEST_MYSQL_PORT"))
	if err != nil {
		return res, errors.New("TEST_MYSQL_PORT is not set (run through bench/faults/run.sh)")
	}
	proxy, err := testenv.ListenTCPProxy(fmt.Sprintf("127.0.0.1:%d", mysqlPort))
	if err != nil {
		return res, err
	}
	defer proxy.Cut()

	users := map[string]authserver.User{}
	for i := range o.phones {
		users[phone(i)] = authserver.User{Password: password, MaxExpires: expires}
	}
	realms := map[string]map[string]authserver.User{realm: users}
	for i := range recoveryTries {
		u, d := recoveryUser(i)
		users[u] = authserver.User{Password: password, MaxExpires: expires}
		realms[d] = map[string]authserver.User{u: {Password: password, MaxExpires: expires}}
	}
	hook := authserver.New(authserver.Options{Users: realms,
		BasicUser: "foo", BasicPass: "bar", WebhookSecret: "foobar", DisableRecording: true})
	hookCtx, stopHook := context.WithCancel(ctx)
	defer stopHook()
	go func() { _ = hook.ListenAndServe(hookCtx, "127.0.0.1:4000") }()

	svc, err := startService(o, mode, proxy.Addr())
	if err != nil {
		return res, err
	}
	defer svc.stop()

	// Phones registered before the outage, and what Redis holds for them.
	sock, err := newPhoneSocket(fmt.Sprintf("127.0.0.1:%d", sipPort))
	if err != nil {
		return res, err
	}
	defer sock.close()
	if err := registerAll(ctx, sock, o.phones); err != nil {
		return res, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: rp.addr()})
	defer rdb.Close()
	before, err := bindings(ctx, rdb, o.phones)
	if err != nil {
		return res, err
	}
	snapAt := time.Now()

	// Steady load: new registrations and cached re-registers, alternating.
	var mu sync.Mutex
	var all []answer
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		load(loadCtx, sock, o.rate, o.phones, func(a answer) {
			mu.Lock()
			all = append(all, a)
			mu.Unlock()
		})
	}()
	samplesCtx, stopSamples := context.WithCancel(ctx)
	defer stopSamples()
	samplesc := make(chan []sample, 1)
	go func() { samplesc <- sampleEvery(samplesCtx, svc.pid(), time.Second) }()

	time.Sleep(5 * time.Second)
	log.Printf("%s: outage of %v at %d REGISTER/s", mode, o.outage, o.rate)
	if mode == "redis" {
		rp.stop()
	} else {
		proxy.Cut()
	}
	res.outageStart = time.Now()
	time.Sleep(o.outage)
	// The outage window ends when the backend is started again; recovery
	// is measured from the moment it answers.
	res.outageEnd = time.Now()
	if mode == "redis" {
		if err := rp.start(); err != nil {
			return res, err
		}
	} else if err := proxy.Relisten(); err != nil {
		return res, err
	}
	res.backAt = time.Now()

	// The first full registration after the backend is back.
	rec, err := newPhoneSocket(fmt.Sprintf("127.0.0.1:%d", sipPort))
	if err != nil {
		return res, err
	}
	defer rec.close()
	for i := 0; ; i++ {
		user, domain := recoveryUser(i)
		if mode == "redis" {
			domain = realm
		}
		code, _ := rec.fullRegister(ctx, user, domain)
		res.recoveryTries = i + 1
		if code == 200 {
			res.recovery = time.Since(res.backAt)
			break
		}
		if i+1 == recoveryTries {
			return res, fmt.Errorf("no registration succeeded within %d attempts after the backend's return (last status %d)", recoveryTries, code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	stopLoad()
	<-loadDone
	time.Sleep(2 * time.Second)
	for _, sent := range sock.forget() {
		if !sent.Before(res.outageStart) && sent.Before(res.outageEnd) {
			res.unanswered++
		}
	}
	stopSamples()
	for _, s := range <-samplesc {
		if !s.at.Before(res.outageStart) && s.at.Before(res.outageEnd) {
			res.samples = append(res.samples, s)
		}
	}
	mu.Lock()
	for _, a := range all {
		if !a.sent.Before(res.outageStart) && a.sent.Before(res.outageEnd) {
			res.answers = append(res.answers, a)
		}
	}
	mu.Unlock()

	// Bindings written before the outage: same JSON, same score, TTL gone
	// down by the time elapsed (they are not rewritten by cached answers).
	after, err := bindings(ctx, rdb, o.phones)
	if err != nil {
		return res, err
	}
	elapsed := time.Since(snapAt)
	for k, b := range before {
		a, ok := after[k]
		switch {
		case !ok:
			res.lost++
		case a.value != b.value || a.score != b.score:
			res.corrupted++
		case a.ttl <= 0 || (b.ttl-a.ttl-elapsed).Abs() > 3*time.Second:
			res.ttlBad++
		}
	}
	log.Printf("%s: done", mode)
	return res, nil
}

func phone(i int) string { return fmt.Sprintf("ph%05d", i) }

// recoveryTries bounds the attempts to register once the backend is back.
const recoveryTries = 2000

// recoveryUser is the user of the i-th attempt to register after the
// outage, in a realm of its own under the known one: its account lookup
// misses the directory cache, goes to MySQL, and finds jambonz.org through
// the parent-domain fallback. The MySQL figure is then that of a
// registration that needs MySQL (the known realm itself registers from the
// stale cache throughout the outage).
func recoveryUser(i int) (user, domain string) {
	return fmt.Sprintf("rec%d", i), fmt.Sprintf("rec%d.%s", i, realm)
}

func registerAll(ctx context.Context, sock *phoneSocket, n int) error {
	sem := make(chan struct{}, 50)
	errc := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			code, err := sock.fullRegister(ctx, phone(i), realm)
			if err == nil && code != 200 {
				err = fmt.Errorf("registering %s: status %d", phone(i), code)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// load sends rate REGISTERs per second until ctx ends, in turn:
//   - unknown-realm: a first REGISTER in a realm never seen (its account
//     must be looked up in MySQL; 403 when up);
//   - new: a first REGISTER of a new user of the known realm (account
//     lookup, served by the directory cache; 401 when up);
//   - cached: a re-register of a registered phone from its own socket and
//     Contact (answered from its binding in Redis; 200).
func load(ctx context.Context, sock *phoneSocket, rate, phones int, record func(answer)) {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if ctx.Err() != nil {
			return
		}
		class, user, domain := "", fmt.Sprintf("new%08d", i), realm
		switch i % 3 {
		case 0:
			class, domain = "unknown-realm", fmt.Sprintf("r%08d.example.com", i)
		case 1:
			class = "new"
		case 2:
			class, user = "cached", phone((i/3)%phones)
		}
		callID := newCallID(class)
		sock.send(callID, sock.register(user, domain, callID, 1, ""), func(sent time.Time, r response) {
			record(answer{class: class, sent: sent, latency: r.at.Sub(sent), code: r.code})
		})
	}
}

type binding struct {
	value string
	score float64
	ttl   time.Duration
}

func bindings(ctx context.Context, rdb *redis.Client, n int) (map[string]binding, error) {
	out := map[string]binding{}
	for i := range n {
		k := "user:" + phone(i) + "@" + realm
		v, err := rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		score, err := rdb.ZScore(ctx, "active-user", k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		out[k] = binding{value: v, score: score, ttl: ttl}
	}
	return out, nil
}

// ---------- processes ----------

type redisProc struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(dir string, port int) (*redisProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &redisProc{dir: dir, port: port}
	return p, p.start()
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// start runs redis-server (AOF, fsync always: a clean SIGTERM loses
// nothing) and returns once it answers PING.
func (p *redisProc) start() error {
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--dir", p.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	rdb := redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: -1})
	defer rdb.Close()
	for range 1000 {
		if rdb.Ping(context.Background()).Err() == nil {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not start", p.addr())
}

// stop shuts redis-server down (SIGTERM, as an operator would) and waits.
func (p *redisProc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
}

type service struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startService(o options, mode, mysqlAddr string) (*service, error) {
	_, mysqlPort, _ := strings.Cut(mysqlAddr, ":")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"JAMBONES_MYSQL_HOST=127.0.0.1",
		"JAMBONES_MYSQL_PORT=" + mysqlPort,
		"JAMBONES_MYSQL_USER=" + os.Getenv("TEST_MYSQL_USER"),
		"JAMBONES_MYSQL_PASSWORD=" + os.Getenv("TEST_MYSQL_PASSWORD"),
		"JAMBONES_MYSQL_DATABASE=" + os.Getenv("TEST_MYSQL_DATABASE"),
		"JAMBONES_REDIS_HOST=127.0.0.1",
		"JAMBONES_REDIS_PORT=" + strconv.Itoa(o.redisPort),
		"ENCRYPTION_SECRET=bench-faults",
		"SIP_LISTEN=udp:127.0.0.1:" + strconv.Itoa(sipPort),
		"HTTP_PORT=" + strconv.Itoa(httpPort),
		"SIP_RATE_LIMIT=0", // one source IP sends the whole load
		"SBC_SOCKET_PATH=" + filepath.Join(o.work, mode+"-cli.sock"),
	}
	logf, err := os.Create(filepath.Join(o.work, mode+"-service.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &service{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	for range 200 {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", httpPort))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("service not ready (log in %s)", logf.Name())
}

func (s *service) pid() int { return s.cmd.Process.Pid }

func (s *service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// sampleEvery reads the service's goroutines (/metrics) and RSS (/proc)
// every interval until ctx ends.
func sampleEvery(ctx context.Context, pid int, interval time.Duration) []sample {
	var out []sample
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
			out = append(out, sample{at: time.Now(), goroutines: goroutines(), rssKB: rssKB(pid)})
		}
	}
}

func goroutines() int {
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return -1
}

// ---------- report ----------

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func report(o options, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault benchmark (bench/faults/run.sh), %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "%d REGISTER/s from one UDP socket, a third each: first REGISTERs in realms never seen (unknown-realm), "+
		"first REGISTERs of new users of a known realm (new), re-registers of %d phones registered before the outage (cached); "+
		"outage of %v; latency = request sent to final answer received; default settings (DIRECTORY_CACHE_TTL_MS 5000, "+
		"DIRECTORY_CACHE_STALE_MS 3600000, BACKEND_PROBE_INTERVAL_MS 250).\n\n",
		o.rate, o.phones, o.outage)
	b.WriteString("| outage | class | requests | answers | p50 | p99 | max | unanswered |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		for _, class := range []string{"unknown-realm", "new", "cached"} {
			var lat []time.Duration
			codes := map[int]int{}
			for _, a := range r.answers {
				if a.class == class {
					lat = append(lat, a.latency)
					codes[a.code]++
				}
			}
			slices.Sort(lat)
			var parts []string
			for _, c := range slices.Sorted(maps.Keys(codes)) {
				parts = append(parts, fmt.Sprintf("%d x %d", codes[c], c))
			}
			unanswered := "-"
			if class == "unknown-realm" {
				unanswered = strconv.Itoa(r.unanswered) + " (all classes)"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", r.mode, class, len(lat), strings.Join(parts, ", "),
				ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)), unanswered)
		}
	}
	b.WriteString("\n| outage | goroutines during it (first / min / max / last) | RSS MB (first / min / max / last) | first registration after the backend is back | bindings before the outage: lost / changed / TTL off |\n|---|---|---|---|---|\n")
	for _, r := range results {
		g := func(f func(sample) int) string {
			if len(r.samples) == 0 {
				return "no samples"
			}
			vals := make([]int, len(r.samples))
			for i, s := range r.samples {
				vals[i] = f(s)
			}
			return fmt.Sprintf("%d / %d / %d / %d", vals[0], slices.Min(vals), slices.Max(vals), vals[len(vals)-1])
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s (attempt %d) | %d / %d / %d of %d |\n", r.mode,
			g(func(s sample) int { return s.goroutines }), g(func(s sample) int { return s.rssKB / 1024 }),
			ms(r.recovery), r.recoveryTries, r.lost, r.corrupted, r.ttlBad, r.phones)
	}
	return b.String()
}
