package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clkTck is USER_HZ, 100 on every Linux we run on.
const clkTck = 100

// procCPU is utime+stime of one process in seconds (0 when it is gone).
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck
}

// group lists the processes whose process group is pgid (Kamailio's main process
// and its forked workers).
func group(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statusKB reads a "Key: N kB" line of /proc/<pid>/<file>.
func statusKB(pid int, file, key string) int {
	return statusKBFile(filepath.Join("/proc", strconv.Itoa(pid), file), key)
}

// sut is the system under test: one process (the Go service) or a process group
// (Kamailio). Memory is RSS for one process and the sum of PSS for a group, so
// that shared memory is counted once. front is the pid of a process in front of
// the service (drachtio-server), counted in CPU and memory besides the service
// and reported on its own too (frontCPU); 0 when there is none.
type sut struct {
	name  string
	pid   int
	group bool
	front int
}

// frontCPU is the CPU of the front process alone (0 without one).
func (s sut) frontCPU() float64 {
	if s.front == 0 {
		return 0
	}
	return procCPU(s.front)
}

func (s sut) cpu() float64 {
	if !s.group {
		return procCPU(s.pid) + s.frontCPU()
	}
	var t float64
	for _, p := range group(s.pid) {
		t += procCPU(p)
	}
	return t
}

// memKB is the resident memory now.
func (s sut) memKB() int {
	if !s.group {
		kb := statusKB(s.pid, "status", "VmRSS")
		if s.front != 0 {
			kb += statusKB(s.front, "status", "VmRSS")
		}
		return kb
	}
	var t int
	for _, p := range group(s.pid) {
		t += statusKB(p, "smaps_rollup", "Pss")
	}
	return t
}

// peakSampler samples s.memKB every interval until stopped; Peak is the maximum.
// front is the peak of the front process alone (drachtio-server), part of peak.
type peakSampler struct {
	mu    sync.Mutex
	peak  int
	front int
	stop  context.CancelFunc
	done  chan struct{}
}

func samplePeak(ctx context.Context, s sut, every time.Duration) *peakSampler {
	ctx, cancel := context.WithCancel(ctx)
	p := &peakSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if m := s.memKB(); m > 0 {
				f := 0
				if s.front != 0 {
					f = statusKB(s.front, "status", "VmRSS")
				}
				p.mu.Lock()
				p.peak, p.front = max(p.peak, m), max(p.front, f)
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends the sampling and returns the peak in kB.
func (p *peakSampler) Stop() int {
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// Front is the front process's peak in kB (after Stop).
func (p *peakSampler) Front() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.front
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// pids lists the processes of s: the service and its front, or every
// process of the group.
func (s sut) pids() []int {
	if s.group {
		return group(s.pid)
	}
	if s.front != 0 {
		return []int{s.pid, s.front}
	}
	return []int{s.pid}
}

// switches is the number of context switches (voluntary and involuntary) of
// every thread of s so far, from /proc/<pid>/task/<tid>/status. A thread that
// ended takes its count with it; the Go runtime and Kamailio keep theirs.
func (s sut) switches() int {
	var t int
	for _, pid := range s.pids() {
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		for _, task := range tasks {
			f := filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "status")
			t += statusKBFile(f, "voluntary_ctxt_switches") + statusKBFile(f, "nonvoluntary_ctxt_switches")
		}
	}
	return t
}

// perfRun is a perf command attached to processes for the length of a run
// (perf installed, and root or a permissive perf_event_paranoid); nil when
// perf cannot run. What perf prints on stderr (perf stat's counts) is kept.
type perfRun struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

// startPerf runs `perf <sub> args... -p <pids>`: it follows the threads the
// processes start too.
func startPerf(ctx context.Context, pids []int, sub string, args ...string) *perfRun {
	perf, err := exec.LookPath("perf")
	if err != nil || len(pids) == 0 {
		return nil
	}
	list := make([]string, len(pids))
	for i, p := range pids {
		list[i] = strconv.Itoa(p)
	}
	p := &perfRun{cmd: exec.CommandContext(ctx, perf, append(append([]string{sub}, args...), "-p", strings.Join(list, ","))...)}
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(os.Interrupt) }
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil
	}
	return p
}

// stop interrupts perf, which then writes what it counted or recorded, and
// returns what it printed on stderr.
func (p *perfRun) stop() string {
	if p == nil {
		return ""
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	return p.stderr.String()
}

// countSyscalls starts counting the system calls of pids with `perf stat -e
// raw_syscalls:sys_enter` (nil when perf cannot; syscalls then reads 0 and
// the tables print "–"). Tracing puts every system call of the processes on
// the kernel's slow path (~10% more CPU per registration for ours at
// 1,000/s), so it is asked for (-count-syscalls), not on by default.
func countSyscalls(ctx context.Context, pids []int) *perfRun {
	return startPerf(ctx, pids, "stat", "-x", ",", "-e", "raw_syscalls:sys_enter")
}

// syscalls ends a count started by countSyscalls and returns it.
func syscalls(p *perfRun) int {
	for line := range strings.Lines(p.stop()) {
		f := strings.Split(line, ",")
		if len(f) > 2 && strings.HasPrefix(f[2], "raw_syscalls:sys_enter") {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}
