package native

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// eventually polls cond (no timing in the assertion: it waits for a state
// the pool reaches on its own, and fails only after a generous bound).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never reached: %s", what)
		}
	}
}

// expiries hands each worker its own idle channel, fired by the test.
type expiries struct {
	mu sync.Mutex
	ch map[*poolWorker]chan time.Time
}

func (e *expiries) of(w *poolWorker) chan time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.ch[w]
	if !ok {
		c = make(chan time.Time, 1)
		e.ch[w] = c
	}
	return c
}

func TestWorkerPool_MostRecentlyIdleServesAndOthersRetire(t *testing.T) {
	gate := make(chan struct{})
	var served sync.WaitGroup
	p := newWorkerPool(8, func(fastJob) {
		<-gate
		served.Done()
	})
	exp := &expiries{ch: map[*poolWorker]chan time.Time{}}
	p.expire = func(w *poolWorker) <-chan time.Time { return exp.of(w) }

	// A burst of 3 concurrent requests starts 3 workers.
	served.Add(3)
	for range 3 {
		p.submit(fastJob{})
	}
	close(gate)
	served.Wait()
	eventually(t, "3 idle workers", func() bool { r, i := p.stats(); return r == 3 && i == 3 })
	p.mu.Lock()
	before := slices.Clone(p.waiting)
	p.mu.Unlock()

	// A steady trickle is served by the most recently idle worker alone:
	// the other two stay where they are (and would time out).
	for range 50 {
		served.Add(1)
		p.submit(fastJob{})
		served.Wait()
		eventually(t, "3 idle workers again", func() bool { _, i := p.stats(); return i == 3 })
		p.mu.Lock()
		same := slices.Equal(p.waiting, before)
		p.mu.Unlock()
		if !same {
			t.Fatal("the idle stack changed order: requests rotate over every worker")
		}
	}

	// The bottom worker's idle timeout ends it; the pool stays usable.
	exp.of(before[0]) <- time.Time{}
	eventually(t, "2 workers", func() bool { r, i := p.stats(); return r == 2 && i == 2 })
	served.Add(4)
	for range 4 {
		p.submit(fastJob{})
	}
	served.Wait()
	if r, _ := p.stats(); r > 8 {
		t.Fatalf("%d workers, bound 8", r)
	}
}

func TestWorkerPool_Bounded(t *testing.T) {
	gate := make(chan struct{})
	var served sync.WaitGroup
	p := newWorkerPool(4, func(fastJob) {
		<-gate
		served.Done()
	})
	served.Add(20)
	for range 20 {
		p.submit(fastJob{}) // beyond 4: a goroutine of its own (refused by the loop)
	}
	if r, _ := p.stats(); r != 4 {
		t.Fatalf("%d workers running, want the bound 4", r)
	}
	close(gate)
	served.Wait()
}
