package native

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

// The stateless UDP path. REGISTER and OPTIONS over UDP are answered at
// once with a final response, so RFC 3261 17.2 lets a server answer them
// without a transaction: the front reads its UDP sockets itself, parses
// those two methods, runs them through the serving loop on a bounded pool
// of workers and writes the answer on the socket the request came in on.
// The answer cache (answers.go) plays the transaction's part for
// retransmissions. Everything else read from the sockets (other methods,
// responses to our own requests, messages the parser refuses) is handed,
// unchanged, to the sipgo stack, which serves it as before through a
// virtual socket (stackConn) that writes through the first real one.

// udpGroup is one UDP listen address: its sockets (several with
// SO_REUSEPORT, each read by its own goroutine) and the socket sipgo sees.
type udpGroup struct {
	socks []*net.UDPConn
	stack *stackConn
}

// stackQueue bounds the datagrams waiting for the sipgo reader; beyond it
// they are dropped, as a full socket buffer would.
const stackQueue = 1024

// stackConn is the PacketConn the sipgo stack serves: it reads what the
// front's readers pass on and writes through the group's first socket (all
// share the address, so peers see the same source).
type stackConn struct {
	out    *net.UDPConn
	in     chan datagram
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	deadline time.Time
}

type datagram struct {
	b    []byte
	addr *net.UDPAddr
}

func newStackConn(out *net.UDPConn) *stackConn {
	return &stackConn{out: out, in: make(chan datagram, stackQueue), closed: make(chan struct{})}
}

// pass queues a copy of b from addr for the stack; false when it is full.
func (s *stackConn) pass(b []byte, addr netip.AddrPort) bool {
	select {
	case s.in <- datagram{b: bytes.Clone(b), addr: net.UDPAddrFromAddrPort(addr)}:
		return true
	default:
		return false
	}
}

func (s *stackConn) ReadFrom(b []byte) (int, net.Addr, error) {
	s.mu.Lock()
	d := s.deadline
	s.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		expired = t.C
	}
	select {
	case dg := <-s.in:
		return copy(b, dg.b), dg.addr, nil
	case <-s.closed:
		return 0, nil, net.ErrClosed
	case <-expired:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (s *stackConn) WriteTo(b []byte, addr net.Addr) (int, error) { return s.out.WriteTo(b, addr) }

// Close closes the virtual socket only; the front closes the real ones.
func (s *stackConn) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *stackConn) LocalAddr() net.Addr { return s.out.LocalAddr() }

func (s *stackConn) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

func (s *stackConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	return nil
}

func (s *stackConn) SetWriteDeadline(t time.Time) error { return s.out.SetWriteDeadline(t) }

// close closes the group's sockets and its virtual one.
func (g *udpGroup) close() {
	_ = g.stack.Close()
	for _, s := range g.socks {
		_ = s.Close()
	}
}

// readUDP reads sock until it is closed: REGISTER and OPTIONS go the
// stateless way, the rest to the stack.
func (f *Front) readUDP(g *udpGroup, sock *net.UDPConn) error {
	buf := make([]byte, sip.TransportBufferReadSize)
	var backoff time.Duration
	for {
		n, raddr, err := sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// ICMP errors reported on the socket, ENOBUFS ...: log, wait a
			// little and read on.
			backoff = nextBackoff(backoff)
			f.rlog.Warn("udp-read", "sip: UDP read failed, retrying", "err", err.Error(), "retry_in_ms", backoff.Milliseconds())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		data := buf[:n]
		// Probes and floods of garbage cost nothing (udpReadFilter).
		if !looksLikeSIP(data) {
			continue
		}
		if f.fastMethod(data) {
			if j, ok := f.parseFast(data, raddr, sock); ok {
				f.dispatchFast(j)
				continue
			}
		}
		g.stack.pass(data, raddr)
	}
}

// fastMethod tells from the start line whether data is a request the
// stateless path serves (a routed REGISTER or OPTIONS).
func (f *Front) fastMethod(data []byte) bool {
	switch {
	case bytes.HasPrefix(data, []byte("REGISTER ")):
		return f.fastRegister
	case bytes.HasPrefix(data, []byte("OPTIONS ")):
		return f.fastOptions
	}
	return false
}

// packetWriter is the socket a fast-path request came in on (a
// *net.UDPConn; benchmarks capture the answer instead).
type packetWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// fastJob is one request of the stateless path.
type fastJob struct {
	req   *sip.Request
	raddr netip.AddrPort // as read (may be IPv4-mapped on a dual-stack socket)
	sock  packetWriter
	key   answerKey
	// queued is when the request started waiting for a worker (zero when
	// it found one at once).
	queued time.Time
}

// parseFast parses a REGISTER/OPTIONS datagram; false hands it to the stack
// (which logs what it cannot parse, as before).
func (f *Front) parseFast(data []byte, raddr netip.AddrPort, sock packetWriter) (fastJob, bool) {
	msg, err := f.parser.ParseSIP(data)
	if err != nil {
		return fastJob{}, false
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return fastJob{}, false
	}
	via, cseq, callID := req.Via(), req.CSeq(), req.CallID()
	if via == nil || cseq == nil || callID == nil {
		return fastJob{}, false
	}
	src := netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	branch, _ := via.Params.Get("branch")
	req.SetTransport("UDP")
	req.SetSource(src.String())
	return fastJob{req: req, raddr: raddr, sock: sock,
		key: answerKey{src: src, branch: branch, seq: cseq.SeqNo, method: string(cseq.MethodName), callID: callID.Value()}}, true
}

// dispatchFast answers a retransmission from the cache (or absorbs it while
// the original is handled) and hands a new request to the workers.
func (f *Front) dispatchFast(j fastJob) {
	switch state, raw := f.answers.begin(j.key); state {
	case answerPending:
		f.absorbed.Add(1)
		return
	case answerDone:
		f.resent.Add(1)
		if raw != nil {
			_, _ = j.sock.WriteToUDPAddrPort(raw, j.raddr)
		}
		return
	}
	f.workers.submit(j)
}

// serveFast runs one request through the loop (on a worker).
func (f *Front) serveFast(j fastJob) {
	f.fast(j, f.loop.ServeSIP)
}

// refuseFast answers a request that found the pool's queue full as the loop
// answers one beyond its in-flight bound (503 with Retry-After).
func (f *Front) refuseFast(j fastJob) {
	f.fast(j, f.loop.Overloaded)
}

// dropFast drops a request that waited too long for a worker: no answer,
// and forgotten, so the client's retransmission is served as a new request.
func (f *Front) dropFast(j fastJob, waited time.Duration) {
	f.answers.forget(j.key)
	f.shed.Add(1)
	f.rlog.Warn("udp-shed", "sip: overloaded, dropping requests that waited too long for a worker",
		"method", string(j.req.Method), "waited_ms", waited.Milliseconds(), "max_wait_ms", f.workers.bounds.maxWait.Milliseconds())
}

// fast runs j through serve (the loop) with a responder writing to the
// socket it came in on.
func (f *Front) fast(j fastJob, serve func(context.Context, sipfront.ResponseWriter, *sipfront.Request)) {
	w := &udpResponder{req: j.req, sock: j.sock, raddr: j.raddr, key: j.key, answers: f.answers}
	serve(context.Background(), w, &sipfront.Request{
		Msg:               j.req,
		Source:            j.key.src,
		Transport:         "udp",
		SBCAddress:        f.SBCAddress(),
		PrivateSBCAddress: f.PrivateSBCAddress(),
	})
	if !w.sent {
		// Dropped on purpose (NoAnswer) or not sent: a retransmission is
		// served again, as it was with a transaction.
		f.answers.forget(j.key)
	}
}

// udpResponder writes the answer on the socket the request came in on and
// keeps it for retransmissions.
type udpResponder struct {
	req     *sip.Request
	sock    packetWriter
	raddr   netip.AddrPort
	key     answerKey
	answers *answerCache
	sent    bool
}

func (w *udpResponder) Respond(_ context.Context, r *sipfront.Response) error {
	if r.Code == sipfront.NoAnswer {
		return nil
	}
	// Built in a pooled buffer and kept at its exact size: the answer cache
	// holds up to 32,768 of them, and a 1 KiB buffer per answer doubled
	// what they cost (answers are ~400-600 bytes).
	b := respBufs.Get().(*bytes.Buffer)
	b.Reset()
	sipmsg.BuildResponse(w.req, r).StringWrite(b)
	raw := bytes.Clone(b.Bytes())
	if b.Cap() <= maxPooledResponse {
		respBufs.Put(b)
	}
	w.answers.finish(w.key, raw)
	w.sent = true
	if _, err := w.sock.WriteToUDPAddrPort(raw, w.raddr); err != nil {
		return fmt.Errorf("native: respond %d: %w", r.Code, err)
	}
	return nil
}

// respBufs are the buffers answers are built in; one grown past
// maxPooledResponse (a huge answer) is left to the collector.
var respBufs = sync.Pool{New: func() any {
	b := new(bytes.Buffer)
	b.Grow(1024)
	return b
}}

const maxPooledResponse = 16 << 10

// workerIdle is how long an idle worker waits for the next request before
// it ends. Short: the workers a steady load needs are never idle that long
// (the most recently idle one gets the next request), and those a burst
// added give their stacks back soon after it.
const workerIdle = 2 * time.Second

// poolBounds bound a workerPool.
type poolBounds struct {
	workers int           // requests handled at once
	queue   int           // requests waiting for a worker; beyond it refused
	maxWait time.Duration // a request waiting longer is dropped, not handled
}

// workerPool runs fast-path requests on at most bounds.workers long-lived
// goroutines (a grown stack is reused, and bursts do not create a
// goroutine per datagram). A request that finds every worker busy waits in
// a FIFO queue of bounds.queue requests; one that finds the queue full is
// refused at once (503 from the loop), and one that waited longer than
// bounds.maxWait when a worker frees up is dropped unanswered.
//
// Why a queue: a handler mostly waits on Redis, MySQL or a webhook. With a
// handler per request (2,048 of them before), an overload queued inside
// those clients' connection pools, where waiters are served in no
// particular order: some requests waited for seconds, up to the loop's 30 s
// deadline, while later ones passed them, and a queue there cannot be
// bounded or measured. Here requests wait parsed, in arrival order, a full
// queue is refused, and the wait bound catches a backend that slowed down.
//
// Idle workers wait on a stack and a request goes to the one idle for the
// shortest time: the few workers a steady load needs stay busy, and those
// a burst added stay idle until they end after workerIdle. (Handing
// requests round-robin to every waiting worker, as one channel shared by
// all of them does, kept every worker of a past burst alive, each with
// its grown stack: 2,000 of them held ~38 MB, docs/performance.md.)
type workerPool struct {
	bounds poolBounds
	serve  func(fastJob)                // handles a request
	drop   func(fastJob, time.Duration) // a request that waited too long (and how long)
	refuse func(fastJob)                // a request that found the queue full
	now    func() time.Time
	expire func(*poolWorker) <-chan time.Time // a worker's idle timeout (tests fire it at will)

	mu      sync.Mutex
	waiting []*poolWorker // idle workers, the most recently idle last
	queue   jobQueue      // requests waiting for a worker, oldest first
	running int
}

// poolWorker is one worker's hand-over slot and idle timer.
type poolWorker struct {
	jobs  chan fastJob
	timer *time.Timer
}

func newWorkerPool(b poolBounds, serve, refuse func(fastJob), drop func(fastJob, time.Duration)) *workerPool {
	return &workerPool{bounds: b, serve: serve, drop: drop, refuse: refuse, now: time.Now, expire: idleTimeout}
}

// idleTimeout (re)arms w's timer for workerIdle: one timer per worker, not
// one per request.
func idleTimeout(w *poolWorker) <-chan time.Time {
	if w.timer == nil {
		w.timer = time.NewTimer(workerIdle)
	} else {
		w.timer.Reset(workerIdle)
	}
	return w.timer.C
}

func (p *workerPool) submit(j fastJob) {
	p.mu.Lock()
	if n := len(p.waiting); n > 0 {
		w := p.waiting[n-1]
		p.waiting[n-1] = nil
		p.waiting = p.waiting[:n-1]
		p.mu.Unlock()
		w.jobs <- j // buffered: never blocks
		return
	}
	if p.running < p.bounds.workers {
		p.running++
		p.mu.Unlock()
		go p.work(j)
		return
	}
	if p.queue.len() < p.bounds.queue {
		j.queued = p.now()
		p.queue.push(j)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.refuse(j)
}

func (p *workerPool) work(j fastJob) {
	w := &poolWorker{jobs: make(chan fastJob, 1)}
	for {
		p.serve(j)
		var ok bool
		if j, ok = p.queuedOrIdle(w); ok {
			continue
		}
		// Idle now (on the stack): the request is not kept meanwhile.
		if j, ok = p.next(w); ok {
			continue
		}
		p.mu.Lock()
		if i := slices.Index(p.waiting, w); i >= 0 {
			p.waiting = slices.Delete(p.waiting, i, i+1)
			p.running--
			p.mu.Unlock()
			if w.timer != nil {
				w.timer.Stop()
			}
			return
		}
		// Taken off the stack by submit at the same moment: its request
		// is on the way.
		p.mu.Unlock()
		j = <-w.jobs
	}
}

// queuedOrIdle takes the oldest queued request that has not waited too
// long, dropping those that have; with none left it puts w on the idle
// stack in the same critical section (so submit never queues a request
// while a worker is on its way to idle).
func (p *workerPool) queuedOrIdle(w *poolWorker) (fastJob, bool) {
	for {
		p.mu.Lock()
		j, ok := p.queue.pop()
		if !ok {
			p.waiting = append(p.waiting, w)
			p.mu.Unlock()
			return fastJob{}, false
		}
		p.mu.Unlock()
		if waited := p.now().Sub(j.queued); waited > p.bounds.maxWait {
			p.drop(j, waited)
			continue
		}
		return j, true
	}
}

// jobQueue is a FIFO of requests in a ring that grows as needed (up to the
// pool's bound) and keeps its size.
type jobQueue struct {
	buf        []fastJob
	head, size int
}

func (q *jobQueue) len() int { return q.size }

func (q *jobQueue) push(j fastJob) {
	if q.size == len(q.buf) {
		grown := make([]fastJob, max(16, 2*len(q.buf)))
		for i := range q.size {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = j
	q.size++
}

func (q *jobQueue) pop() (fastJob, bool) {
	if q.size == 0 {
		return fastJob{}, false
	}
	j := q.buf[q.head]
	q.buf[q.head] = fastJob{} // the request is not kept by the ring
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return j, true
}

// held returns the requests the pool has taken and not finished: those
// being served (a worker counts until it is free again) and those queued.
func (p *workerPool) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running - len(p.waiting) + p.queue.len()
}

// stats returns the workers running and, of them, the idle ones.
func (p *workerPool) stats() (running, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, len(p.waiting)
}

// keepStack is how much stack a waiting worker holds in use.
const keepStack = 8 << 10

// next waits for w's next job, or reports false when w has been idle for
// workerIdle. Its frame holds keepStack bytes: the garbage collector halves
// the stack of a goroutine that uses less than a quarter of it, so an idle
// worker parked on a shallow frame lost its grown stack at every cycle and
// the next request grew it again (runtime.copystack was 7% of the CPU of
// cached refreshes, docs/performance.md). With the pad, stacks up to
// 4*keepStack are kept.
//
//go:noinline
func (p *workerPool) next(w *poolWorker) (fastJob, bool) {
	var pad [keepStack]byte
	holdStack(pad[:])
	select {
	case j := <-w.jobs:
		return j, true
	case <-p.expire(w):
		return fastJob{}, false
	}
}

// holdStack keeps its argument (a stack array) from being optimised away.
//
//go:noinline
func holdStack(b []byte) { b[0] = 0 }
