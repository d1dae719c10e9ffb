package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// nonceSeq makes every nonce claim of the process unique, as a real nonce
// count is.
var nonceSeq atomic.Uint64

// drive makes n registrations under load l and returns the wall time of
// each (all four round trips of one registration) and how many failed. A
// failure does not stop the run: on an overloaded machine go-redis' pool
// wait can time out, and that is a result too.
func drive(ctx context.Context, rc registerer, us []user, l load, n int) ([]time.Duration, int, error) {
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	var once sync.Once
	var first error
	one := func(i int) {
		nonce := "bench:nonce:" + strconv.FormatUint(nonceSeq.Add(1), 36) + ":1"
		t0 := time.Now()
		err := rc.register(ctx, &us[i%len(us)], nonce, t0.Add(bindingTTL).UnixMilli())
		lat[i] = time.Since(t0)
		if err != nil {
			failed.Add(1)
			once.Do(func() { first = err })
		}
	}
	var wg sync.WaitGroup
	if l.rate > 0 {
		// Every millisecond, start the registrations due by then.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for started := 0; started < n; {
			due := min(int(time.Since(start).Seconds()*float64(l.rate))+1, n)
			for ; started < due; started++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					one(i)
				}(started)
			}
			<-tick.C
		}
	} else {
		var next atomic.Int64
		for g := 0; g < l.conc; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					one(i)
				}
			}()
		}
	}
	wg.Wait()
	return lat, int(failed.Load()), first
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perfStat counts this process's syscalls (all its threads, and the
// threads they start) from start to stop.
type perfStat struct {
	cmd *exec.Cmd
	out string
}

func startPerf() (*perfStat, error) {
	f, err := os.CreateTemp("", "redisclient-perf-*.csv")
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	cmd := exec.Command("perf", "stat", "-e", "raw_syscalls:sys_enter", "-x", ",", "-o", f.Name(),
		"-p", strconv.Itoa(os.Getpid()))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf: %w", err)
	}
	// perf says nothing once attached; give it time (an idle Go process
	// makes a few dozen syscalls meanwhile, counted with the run).
	time.Sleep(500 * time.Millisecond)
	return &perfStat{cmd: cmd, out: f.Name()}, nil
}

func (p *perfStat) stop() (int64, error) {
	defer os.Remove(p.out)
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	f, err := os.Open(p.out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		field, _, _ := strings.Cut(line, ",")
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("perf output %q: %w", line, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("perf wrote no count")
}

// admin reads the server's counters on a connection of its own.
type admin struct{ rdb *redis.Client }

type serverStats struct {
	cpu           float64 // seconds, user + system
	reads, writes int64
}

func newAdmin(addr string) (*admin, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	return &admin{rdb: rdb}, nil
}

func (a *admin) close() { _ = a.rdb.Close() }

func (a *admin) info(section string) map[string]string {
	s, err := a.rdb.Info(context.Background(), section).Result()
	if err != nil {
		fail(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

func (a *admin) version() string { return a.info("server")["redis_version"] }

func (a *admin) stats() (serverStats, error) {
	cpu, stats := a.info("cpu"), a.info("stats")
	var s serverStats
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(cpu[k], 64)
		if err != nil {
			return s, fmt.Errorf("INFO cpu %s: %w", k, err)
		}
		s.cpu += v
	}
	var err error
	if s.reads, err = strconv.ParseInt(stats["total_reads_processed"], 10, 64); err != nil {
		return s, fmt.Errorf("INFO stats total_reads_processed: %w", err)
	}
	if s.writes, err = strconv.ParseInt(stats["total_writes_processed"], 10, 64); err != nil {
		return s, fmt.Errorf("INFO stats total_writes_processed: %w", err)
	}
	return s, nil
}

// result is one measured run, per registration.
type result struct {
	regs          int
	perSec        float64
	cpuUs         float64
	p50, p99      time.Duration
	allocs, bytes float64
	serverCPU     float64 // µs
	reads, writes float64
	syscalls      float64
	failed        int
	inflight      float64 // registrations in flight, mean (Little: Σ latency / wall)
}

func (r result) String() string {
	return fmt.Sprintf("%7.0f reg/s  cpu %6.1f µs  p50 %6.0f µs  p99 %6.0f µs  %5.1f allocs  %6.0f B  server: %5.2f reads %5.1f µs  in flight %.2f  failed %d",
		r.perSec, r.cpuUs, us(r.p50), us(r.p99), r.allocs, r.bytes, r.reads, r.serverCPU, r.inflight, r.failed)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// report prints one markdown row per client and concurrency: medians of
// the repeats, with the CPU's range, and the CPU relative to go-redis.
func report(w io.Writer, cs []client, levels []load, res map[key][]result, sys map[key]float64) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| client | load | in flight | reg/s | client CPU µs/reg (min–max) | CPU vs goredis | p50 µs | p99 µs | allocs/reg | B/reg | syscalls/reg | server reads/reg | server CPU µs/reg | failed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range levels {
		base := median(res[key{"goredis", n}], func(r result) float64 { return r.cpuUs })
		for _, c := range cs {
			rs := res[key{c.name, n}]
			if len(rs) == 0 {
				continue
			}
			cpu := median(rs, func(r result) float64 { return r.cpuUs })
			lo, hi := minMax(rs, func(r result) float64 { return r.cpuUs })
			ratio := "–"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f", cpu/base)
			}
			sc := "–"
			if v, ok := sys[key{c.name, n}]; ok {
				sc = fmt.Sprintf("%.1f", v)
			}
			failed := 0
			for _, r := range rs {
				failed += r.failed
			}
			fmt.Fprintf(w, "| %s | %s | %.2f | %.0f | %.1f (%.1f–%.1f) | %s | %.0f | %.0f | %.1f | %.0f | %s | %.2f | %.1f | %d |\n",
				c.name, n, median(rs, func(r result) float64 { return r.inflight }),
				median(rs, func(r result) float64 { return r.perSec }),
				cpu, lo, hi, ratio,
				median(rs, func(r result) float64 { return us(r.p50) }),
				median(rs, func(r result) float64 { return us(r.p99) }),
				median(rs, func(r result) float64 { return r.allocs }),
				median(rs, func(r result) float64 { return r.bytes }),
				sc,
				median(rs, func(r result) float64 { return r.reads }),
				median(rs, func(r result) float64 { return r.serverCPU }),
				failed)
		}
	}
}

func median(rs []result, f func(result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func minMax(rs []result, f func(result) float64) (lo, hi float64) {
	for i, r := range rs {
		v := f(r)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}
