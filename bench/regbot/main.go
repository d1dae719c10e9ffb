// Command regbot-bench brings up N outbound registrations against one sipp
// carrier and reports how long until all are registered, the peak REGISTER
// send rate (which the batch pacing bounds) and the memory per agent.
//
// It needs the test services (scripts/test.sh --services-only) and sipp;
// run it through run.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// counting wraps the SIP client and timestamps every first REGISTER of an
// attempt (the one without Authorization).
type counting struct {
	next  sipfront.Client
	mu    sync.Mutex
	sends []time.Time
	all   int
}

func (c *counting) Do(ctx context.Context, r sipfront.OutboundRequest) (*sip.Response, error) {
	c.mu.Lock()
	c.all++
	if r.Msg.GetHeader("Authorization") == nil {
		c.sends = append(c.sends, time.Now())
	}
	c.mu.Unlock()
	return c.next.Do(ctx, r)
}

// peak is the most first-REGISTERs sent within any window.
func (c *counting) peak(window time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	best, j := 0, 0
	for i := range c.sends {
		for c.sends[i].Sub(c.sends[j]) >= window {
			j++
		}
		if n := i - j + 1; n > best {
			best = n
		}
	}
	return best
}

func main() {
	n := flag.Int("agents", 2000, "registrations")
	batch := flag.Int("batch", 10, "JAMBONES_REGBOT_BATCH_SIZE")
	sleep := flag.Duration("sleep", 250*time.Millisecond, "JAMBONES_REGBOT_BATCH_SLEEP_MS")
	sipp := flag.String("sipp", "sipp", "sipp binary")
	scenario := flag.String("scenario", "uas.xml", "sipp UAS scenario")
	flag.Parse()
	if err := run(*n, *batch, *sleep, *sipp, *scenario); err != nil {
		fmt.Fprintln(os.Stderr, "regbot-bench:", err)
		os.Exit(1)
	}
}

func run(n, batch int, sleep time.Duration, sippBin, scenario string) error {
	ctx := context.Background()
	port, _ := strconv.Atoi(os.Getenv("TEST_MYSQL_PORT"))
	db, err := mysqldir.Open(config.MySQL{Host: os.Getenv("TEST_MYSQL_HOST"), Port: port, User: os.Getenv("TEST_MYSQL_USER"),
		Password: os.Getenv("TEST_MYSQL_PASSWORD"), Database: os.Getenv("TEST_MYSQL_DATABASE"), ConnectionLimit: 8})
	if err != nil {
		return err
	}
	defer db.Close()
	redisHost, redisPort, err := net.SplitHostPort(os.Getenv("TEST_REDIS_ADDR"))
	if err != nil {
		return fmt.Errorf("TEST_REDIS_ADDR: %w", err)
	}
	redisPortN, err := strconv.Atoi(redisPort)
	if err != nil {
		return fmt.Errorf("TEST_REDIS_ADDR: %w", err)
	}
	// The service's client (internal/redisconn), without its probe: the
	// bench ends at the first failure anyway.
	rdb, _, err := redisconn.Open(config.Redis{Host: redisHost, Port: redisPortN, DialTimeout: time.Second, Timeout: time.Second},
		time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer rdb.Close()
	kv := redisstore.NewKV(rdb)

	const carrierIP, carrierPort = "127.0.0.45", "16445"
	uas := exec.Command(sippBin, "-sf", scenario, "-i", carrierIP, "-p", carrierPort, "-t", "u1", "-nostdin",
		"-deadcall_wait", "1")
	uas.Stdout, uas.Stderr = io.Discard, io.Discard
	if err := uas.Start(); err != nil {
		return fmt.Errorf("sipp: %w", err)
	}
	defer func() { _ = uas.Process.Kill(); _ = uas.Wait() }()

	cleanup := func() {
		_, _ = db.Exec(`DELETE FROM sip_gateways WHERE sip_gateway_sid LIKE 'bench%'`)
		_, _ = db.Exec(`DELETE FROM voip_carriers WHERE voip_carrier_sid LIKE 'bench%'`)
	}
	cleanup()
	defer cleanup()
	for i := 0; i < n; i++ {
		sid := fmt.Sprintf("bench-%030d", i)
		if _, err := db.Exec(`INSERT INTO voip_carriers (voip_carrier_sid, name, requires_register, register_username,
  register_sip_realm, register_password) VALUES (?, ?, 1, 'foo', ?, 'bar')`, sid, "bench"+strconv.Itoa(i), fmt.Sprintf("r%d.sip.jambonz.org", i)); err != nil {
			return err
		}
		if _, err := db.Exec(`INSERT INTO sip_gateways (sip_gateway_sid, voip_carrier_sid, ipv4, port, inbound, outbound)
  VALUES (?, ?, ?, ?, 0, 1)`, sid, sid, carrierIP, carrierPort); err != nil {
			return err
		}
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	front, err := native.New(native.Options{Listen: []config.Listen{{Transport: "udp", Host: "127.0.0.1", Port: 16446}}, Log: log}, sipfront.NewMux(), nil)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := front.Listen(fctx); err != nil {
		return err
	}
	go func() { _ = front.Serve(fctx) }()
	client, err := front.NewClient(5 * time.Second)
	if err != nil {
		return err
	}
	cc := &counting{next: client}
	_, _ = kv.Del(ctx, "bench:regbot-token")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goBefore := runtime.NumGoroutine()

	rb := regbot.New(regbot.Deps{Store: kv, Carriers: mysqldir.NewCarriers(db, db), Client: cc, Log: log},
		regbot.Options{Regbot: config.Regbot{DefaultExpires: 3600, MinExpires: 30, FailureRetryInterval: 5 * time.Second,
			FailureThreshold: 3, BatchSize: batch, BatchSleep: sleep, UserAgent: "bench", StatusInterval: time.Hour},
			ClusterID: "bench", UnregisterTimeout: 30 * time.Second})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = rb.Run(rctx); close(done) }()
	deadline := start.Add(10 * time.Minute)
	for rb.Status().Registered < n {
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("only %d of %d registered after 10 min", rb.Status().Registered, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	goAfter := runtime.NumGoroutine()

	fmt.Printf("agents                 %d\n", n)
	fmt.Printf("pacing                 batch %d, sleep %s (bound %.0f REGISTER/s)\n", batch, sleep, float64(batch)/sleep.Seconds())
	fmt.Printf("all registered after   %s\n", elapsed.Round(time.Millisecond))
	fmt.Printf("peak first REGISTERs   %d in any 1 s window, %d in any %s window\n", cc.peak(time.Second), cc.peak(sleep), sleep)
	fmt.Printf("SIP requests sent      %d (challenge + answer per agent)\n", cc.all)
	fmt.Printf("heap per agent         %.1f KiB (heap %0.1f -> %0.1f MiB)\n",
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n)/1024,
		float64(before.HeapAlloc)/(1<<20), float64(after.HeapAlloc)/(1<<20))
	fmt.Printf("goroutines per agent   %.2f (%d -> %d)\n", float64(goAfter-goBefore)/float64(n), goBefore, goAfter)

	unreg := time.Now()
	stop()
	<-done
	fmt.Printf("shutdown un-register   %s for %d agents (deadline 30 s)\n", time.Since(unreg).Round(time.Millisecond), n)
	return nil
}
