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
	p := newWorkerPool(poolBounds{workers: 8, maxWait: time.Hour}, func(fastJob) {
		<-gate
		served.Done()
	}, unexpected(t, "refused"), unexpectedDrop(t))
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

// unexpected fails the test when a request takes the path named what.
func unexpected(t *testing.T, what string) func(fastJob) {
	return func(fastJob) { t.Errorf("a request was %s", what) }
}

func unexpectedDrop(t *testing.T) func(fastJob, time.Duration) {
	return func(fastJob, time.Duration) { t.Error("a request was dropped") }
}

// clock is a settable time for the pool (how long a request waited).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder remembers, in order, the requests (by CSeq) a path saw.
type recorder struct {
	mu   sync.Mutex
	seqs []uint32
}

func (r *recorder) add(j fastJob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, j.key.seq)
}

func (r *recorder) get() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

func job(seq uint32) fastJob { return fastJob{key: answerKey{seq: seq}} }

// Beyond its workers the pool queues requests, beyond the queue it refuses
// them (the loop's 503); queued ones are served in arrival order.
func TestWorkerPool_BoundedQueueThenRefused(t *testing.T) {
	gate := make(chan struct{})
	var served, refused recorder
	p := newWorkerPool(poolBounds{workers: 4, queue: 6, maxWait: time.Hour}, func(j fastJob) {
		<-gate
		served.add(j)
	}, refused.add, unexpectedDrop(t))
	c := &clock{}
	p.now = c.now
	for i := range 20 {
		p.submit(job(uint32(i)))
	}
	if r, _ := p.stats(); r != 4 {
		t.Fatalf("%d workers running, want the bound 4", r)
	}
	if got := refused.get(); !slices.Equal(got, []uint32{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) {
		t.Fatalf("refused %v, want the 10 beyond 4 workers and 6 queued", got)
	}
	close(gate)
	eventually(t, "10 served", func() bool { return len(served.get()) == 10 })
	got := served.get()
	slices.Sort(got)
	if !slices.Equal(got, []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("served %v, want 0-9", got)
	}
	eventually(t, "every worker idle", func() bool { r, i := p.stats(); return r == 4 && i == 4 })
}

// One worker takes queued requests oldest first.
func TestWorkerPool_QueueInArrivalOrder(t *testing.T) {
	gate := make(chan struct{})
	var served recorder
	p := newWorkerPool(poolBounds{workers: 1, queue: 100, maxWait: time.Hour}, func(j fastJob) {
		if j.key.seq == 0 {
			<-gate
		}
		served.add(j)
	}, unexpected(t, "refused"), unexpectedDrop(t))
	c := &clock{}
	p.now = c.now
	want := make([]uint32, 50)
	for i := range want {
		want[i] = uint32(i)
		p.submit(job(uint32(i)))
	}
	close(gate)
	eventually(t, "50 served", func() bool { return len(served.get()) == 50 })
	if got := served.get(); !slices.Equal(got, want) {
		t.Fatalf("served %v, want arrival order", got)
	}
}

// A queued request that waited longer than maxWait when a worker frees up is
// dropped, not served; a fresh one behind it is served.
func TestWorkerPool_StaleRequestsDropped(t *testing.T) {
	gate := make(chan struct{})
	var served, dropped recorder
	var waits []time.Duration
	var mu sync.Mutex
	p := newWorkerPool(poolBounds{workers: 1, queue: 10, maxWait: 200 * time.Millisecond}, func(j fastJob) {
		if j.key.seq == 0 {
			<-gate
		}
		served.add(j)
	}, unexpected(t, "refused"), func(j fastJob, waited time.Duration) {
		mu.Lock()
		waits = append(waits, waited)
		mu.Unlock()
		dropped.add(j)
	})
	c := &clock{}
	p.now = c.now
	p.submit(job(0)) // holds the only worker
	p.submit(job(1))
	p.submit(job(2))
	c.advance(150 * time.Millisecond)
	p.submit(job(3))
	c.advance(100 * time.Millisecond) // 1 and 2 waited 250 ms, 3 waited 100 ms
	close(gate)
	eventually(t, "served and dropped", func() bool { return len(served.get()) == 2 && len(dropped.get()) == 2 })
	if got := served.get(); !slices.Equal(got, []uint32{0, 3}) {
		t.Fatalf("served %v, want [0 3]", got)
	}
	if got := dropped.get(); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("dropped %v, want [1 2]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, w := range waits {
		if w != 250*time.Millisecond {
			t.Fatalf("dropped after waiting %v, want 250ms", w)
		}
	}
}

// The ring keeps arrival order across growth and wrap-around, and does not
// keep a popped request.
func TestJobQueue_FIFO(t *testing.T) {
	var q jobQueue
	next, want := uint32(0), uint32(0)
	// pop takes up to n requests (all with n < 0), checking their order.
	pop := func(n int) {
		for ; n != 0; n-- {
			j, ok := q.pop()
			if !ok {
				return
			}
			if j.key.seq != want {
				t.Fatalf("popped %d, want %d", j.key.seq, want)
			}
			want++
		}
	}
	for round := range 50 {
		for range round%7 + 1 {
			q.push(job(next))
			next++
		}
		pop(round % 5)
	}
	pop(-1)
	if want != next || q.len() != 0 {
		t.Fatalf("popped %d of %d, %d left", want, next, q.len())
	}
	for i, j := range q.buf {
		if j != (fastJob{}) {
			t.Fatalf("slot %d still holds a request", i)
		}
	}
}
