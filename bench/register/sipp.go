package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// load is one sipp run: procs parallel sipp processes sharing rate and calls.
type load struct {
	Scenario string   // file in the scenarios directory
	Target   string   // registrar host:port
	CSVs     []string // one per process
	Rate     int      // calls/s, all processes together
	Calls    int      // calls, all processes together
	Timeout  time.Duration
}

// sippResult is what one run measured on the generator side.
type sippResult struct {
	Calls, Successful, Failed int
	RetransAfterWarmup        int
	Achieved                  float64 // calls/s started while generating
	P50, P99, Max             float64 // ms, calls whose first REGISTER left after the warm-up
	LatencySamples            int
	CPUSeconds                float64 // all sipp processes, user+sys
}

const warmup = 5 * time.Second

// runSipp starts the processes, waits for all of them and reads their statistics.
// sippGrace is how long past its -timeout a sipp process may take to write
// its statistics and exit.
const sippGrace = 30 * time.Second

func (b *bench) runSipp(ctx context.Context, name string, l load) (sippResult, error) {
	dir := filepath.Join(b.out, "runs", name)
	// sipp names its files after its pid: files of an earlier run in a
	// reused OUT would be read as this run's.
	if err := os.RemoveAll(dir); err != nil {
		return sippResult{}, fmt.Errorf("sipp: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sippResult{}, fmt.Errorf("sipp: %w", err)
	}
	// sipp ends itself after l.Timeout; one that does not (a sipp hung in a
	// futex after its last call, 2026-11-30, holding the bench for ten
	// minutes) is killed a while after, and its run fails.
	ctx, cancel := context.WithTimeout(ctx, l.Timeout+sippGrace)
	defer cancel()
	procs := len(l.CSVs)
	cmds := make([]*exec.Cmd, procs)
	for p := range procs {
		pdir := filepath.Join(dir, strconv.Itoa(p))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return sippResult{}, fmt.Errorf("sipp: %w", err)
		}
		rate := float64(l.Rate) / float64(procs)
		calls := l.Calls / procs
		args := []string{l.Target, "-sf", filepath.Join(b.scenarios, l.Scenario), "-inf", l.CSVs[p],
			"-i", "127.0.0.1", "-p", strconv.Itoa(b.sippBasePort + p),
			"-r", strconv.FormatFloat(rate, 'f', 3, 64), "-m", strconv.Itoa(calls),
			"-l", strconv.Itoa(max(100, int(rate)*4)), "-nostdin", "-nd",
			"-timeout", fmt.Sprintf("%ds", int(l.Timeout.Seconds())), "-timeout_error",
			"-trace_stat", "-stf", filepath.Join(pdir, "stat.csv"), "-fd", "1",
			"-trace_rtt", "-rtt_freq", "100", "-buff_size", "4194304"}
		cmd := exec.CommandContext(ctx, "sipp", args...)
		cmd.Dir = pdir
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+b.clockShim)
		out, err := os.Create(filepath.Join(pdir, "sipp.out"))
		if err != nil {
			return sippResult{}, fmt.Errorf("sipp: %w", err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			out.Close()
			return sippResult{}, fmt.Errorf("sipp: start: %w", err)
		}
		defer out.Close()
		cmds[p] = cmd
	}
	var res sippResult
	var lat []float64
	for p, cmd := range cmds {
		_ = cmd.Wait() // sipp exits non-zero when a call failed; the statistics tell.
		if ctx.Err() != nil {
			return res, fmt.Errorf("sipp %s/%d did not end within %s: killed", name, p, l.Timeout+sippGrace)
		}
		if st := cmd.ProcessState; st != nil {
			res.CPUSeconds += (st.UserTime() + st.SystemTime()).Seconds()
		}
		pdir := filepath.Join(dir, strconv.Itoa(p))
		s, err := readStat(filepath.Join(pdir, "stat.csv"))
		if err != nil {
			return res, fmt.Errorf("sipp %s/%d: %w (see %s)", name, p, err, filepath.Join(pdir, "sipp.out"))
		}
		res.Calls += s.outgoing
		res.Successful += s.successful
		res.Failed += s.failed
		res.RetransAfterWarmup += s.retrans - s.retransAtWarmup
		res.Achieved += s.achieved
		rtt, _ := filepath.Glob(filepath.Join(pdir, "*_rtt.csv"))
		for _, f := range rtt {
			v, err := readRTT(f)
			if err != nil {
				return res, fmt.Errorf("sipp %s/%d: %w", name, p, err)
			}
			lat = append(lat, v...)
		}
	}
	sort.Float64s(lat)
	res.LatencySamples = len(lat)
	if len(lat) > 0 {
		res.P50 = quantile(lat, 0.50)
		res.P99 = quantile(lat, 0.99)
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

type stat struct {
	outgoing, successful, failed, retrans, retransAtWarmup int
	achieved                                               float64
}

// readStat reads sipp's -trace_stat file (one row per second, cumulative columns).
func readStat(path string) (stat, error) {
	f, err := os.Open(path)
	if err != nil {
		return stat{}, err
	}
	defer f.Close()
	var s stat
	col := map[string]int{}
	type row struct {
		elapsed                   float64
		out, ok, fail, retransmit int
	}
	var rows []row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ";")
		if len(col) == 0 {
			for i, h := range fields {
				col[h] = i
			}
			for _, h := range []string{"ElapsedTime(C)", "OutgoingCall(C)", "SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)"} {
				if _, ok := col[h]; !ok {
					return s, fmt.Errorf("stat file: no column %s", h)
				}
			}
			continue
		}
		get := func(h string) int {
			n, _ := strconv.Atoi(strings.TrimSpace(fields[col[h]]))
			return n
		}
		if len(fields) < len(col) {
			continue
		}
		rows = append(rows, row{elapsed: parseElapsed(fields[col["ElapsedTime(C)"]]),
			out: get("OutgoingCall(C)"), ok: get("SuccessfulCall(C)"), fail: get("FailedCall(C)"), retransmit: get("Retransmissions(C)")})
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if len(rows) == 0 {
		return s, fmt.Errorf("stat file: no rows")
	}
	last := rows[len(rows)-1]
	s.outgoing, s.successful, s.failed, s.retrans = last.out, last.ok, last.fail, last.retransmit
	for _, r := range rows {
		if r.elapsed <= warmup.Seconds() {
			s.retransAtWarmup = r.retransmit
		}
	}
	// Achieved rate: calls started per second while sipp was still starting calls
	// (the last row before the total was reached), so the tail of answers does not count.
	s.achieved = float64(last.out) / last.elapsed
	for _, r := range rows {
		if r.out < last.out && r.elapsed > 1 {
			s.achieved = float64(r.out) / r.elapsed
		}
	}
	return s, nil
}

// parseElapsed reads sipp's "HH:MM:SS:uuuuuu" (or "HH:MM:SS") elapsed time.
func parseElapsed(v string) float64 {
	p := strings.Split(strings.TrimSpace(v), ":")
	var t float64
	for i, x := range p {
		n, _ := strconv.ParseFloat(x, 64)
		switch i {
		case 0:
			t += n * 3600
		case 1:
			t += n * 60
		case 2:
			t += n
		case 3:
			t += n / 1e6
		}
	}
	return t
}

// readRTT reads sipp's -trace_rtt file (date_ms;response_time_ms;rtd_no) and keeps
// the calls that started after the warm-up.
func readRTT(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []float64
	var t0 float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ";")
		if len(p) < 2 {
			continue
		}
		date, err1 := strconv.ParseFloat(strings.TrimSpace(p[0]), 64)
		rt, err2 := strconv.ParseFloat(strings.TrimSpace(p[1]), 64)
		if err1 != nil || err2 != nil {
			continue // header
		}
		if t0 == 0 {
			t0 = date
		}
		if date-rt >= t0+float64(warmup.Milliseconds()) {
			out = append(out, rt)
		}
	}
	return out, sc.Err()
}
