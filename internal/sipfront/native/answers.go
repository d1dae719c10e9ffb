package native

import (
	"net/netip"
	"sync"
	"time"
)

// The stateless UDP path (fastpath.go) keeps no sipgo server transaction, so
// a retransmitted request must be recognised here: an authenticated REGISTER
// handled twice would have its nonce count refused the second time. The
// answer cache remembers each request for between one and two periods (the
// same 2 s window as UDPTimerJ): while it is being handled a retransmission
// is absorbed, once answered it gets the same bytes again (RFC 3261 17.2.2).
//
// It is two generations of maps: lookups see both, inserts go to the
// current one, which becomes the previous one (dropping the older) when a
// period has passed or it holds half the bound. A flood of distinct branches
// thus costs at most maxAnswers entries and only shortens how long each is
// kept.

// Defaults of the answer cache.
const (
	defaultMaxAnswers = 32768
	answerPeriod      = UDPTimerJ
)

// answerKey identifies a request (and its retransmissions): source, top Via
// branch, CSeq and Call-ID (the latter two also tell apart requests of
// clients that reuse branches, as RFC 2543 ones may).
type answerKey struct {
	src    netip.AddrPort
	branch string
	seq    uint32
	method string
	callID string
}

// answerState is what a lookup found.
type answerState uint8

const (
	answerNew     answerState = iota // not seen: the caller handles it
	answerPending                    // being handled: drop the retransmission
	answerDone                       // answered: resend the stored bytes
)

type answerEntry struct {
	done bool
	raw  []byte // nil with done: answered with nothing (dropped)
}

type answerCache struct {
	max    int
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	cur     map[answerKey]*answerEntry
	prev    map[answerKey]*answerEntry
	rotated time.Time
}

func newAnswerCache(max int, period time.Duration) *answerCache {
	if max <= 0 {
		max = defaultMaxAnswers
	}
	if period <= 0 {
		period = answerPeriod
	}
	c := &answerCache{max: max, period: period, now: time.Now}
	c.cur, c.rotated = map[answerKey]*answerEntry{}, c.now()
	return c
}

// begin looks k up; when new, it is recorded as pending. The returned bytes
// are the stored answer with answerDone (nil when nothing was sent).
func (c *answerCache) begin(k answerKey) (answerState, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cur[k]
	if !ok {
		e, ok = c.prev[k]
	}
	if ok {
		if e.done {
			return answerDone, e.raw
		}
		return answerPending, nil
	}
	c.maybeRotate()
	c.cur[k] = &answerEntry{}
	return answerNew, nil
}

// finish stores the answer of k (raw is kept, not copied).
func (c *answerCache) finish(k answerKey, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cur[k]
	if !ok {
		if e, ok = c.prev[k]; !ok {
			return // rotated out by a flood; nothing to store
		}
	}
	e.done, e.raw = true, raw
}

// forget drops k: its retransmission will be handled as a new request.
func (c *answerCache) forget(k answerKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, k)
	delete(c.prev, k)
}

// len is the number of requests remembered.
func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// maybeRotate starts a new generation when the current one is full or old;
// c.mu is held.
func (c *answerCache) maybeRotate() {
	now := c.now()
	if len(c.cur) < c.max/2 && now.Sub(c.rotated) < c.period {
		return
	}
	c.prev = c.cur
	c.cur, c.rotated = make(map[answerKey]*answerEntry, len(c.prev)), now
}
