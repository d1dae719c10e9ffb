package main

import (
	"bufio"
	"context"
	"os"
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
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), file))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key+":") {
			n, _ := strconv.Atoi(strings.Fields(line[len(key)+1:])[0])
			return n
		}
	}
	return 0
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
