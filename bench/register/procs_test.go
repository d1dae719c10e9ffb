package main

import (
	"os"
	"runtime"
	"testing"
)

// The figures the tables divide by the calls come from /proc: a parser that
// read nothing would print zeros, not fail.
func TestProcFiguresOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	s := sut{name: "self", pid: os.Getpid()}
	if kb := s.memKB(); kb <= 0 {
		t.Errorf("RSS %d kB", kb)
	}
	before := s.switches()
	for range 50 {
		runtime.Gosched()
		ch := make(chan struct{})
		go func() { close(ch) }()
		<-ch
	}
	if before <= 0 || s.switches() < before {
		t.Errorf("context switches %d, then %d", before, s.switches())
	}
	if n := statusKBFile("/proc/meminfo", "MemTotal"); n <= 0 {
		t.Errorf("MemTotal %d kB", n)
	}
}
