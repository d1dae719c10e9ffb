package regbot

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Decision is what an agent does after an answer (docs/outbound.md#retry-policy).
type Decision string

const (
	// DecisionRefresh: registered, refresh at half the granted expiry.
	DecisionRefresh Decision = "refresh"
	// DecisionMinExpires: 423 Interval Too Brief, re-register at once
	// asking for the carrier's Min-Expires; not a failure.
	DecisionMinExpires Decision = "min-expires"
	// DecisionRetryAfter: the carrier said when to come back (Retry-After).
	DecisionRetryAfter Decision = "retry-after"
	// DecisionBackoff: no answer, a transport error or a 5xx without
	// Retry-After; exponential backoff with jitter.
	DecisionBackoff Decision = "backoff"
	// DecisionFailover: this hop is unavailable (what would be backoff or
	// retry-after); try the carrier's next gateway or SRV target at once.
	DecisionFailover Decision = "failover"
	// DecisionRetry: any other failure; retry after FailureRetryInterval.
	DecisionRetry Decision = "retry"
	// DecisionDisable: too many answers listed in REGISTER_RESPONSE_REMOVE.
	DecisionDisable Decision = "disable"
)

// retryAfterMax bounds a carrier's Retry-After, so a typo on its side does
// not park a registration for days.
const retryAfterMax = time.Hour

// policy holds the settings the decisions depend on.
type policy struct {
	retry          time.Duration // FailureRetryInterval: fixed retry, backoff ceiling
	backoffInitial time.Duration
	maxExpires     int
	threshold      int
	remove         []int
	// jitter returns a duration in [d/2, d]; tests make it deterministic.
	jitter func(d time.Duration) time.Duration
}

func newPolicy(o Options) policy {
	p := policy{
		retry: o.FailureRetryInterval, backoffInitial: o.BackoffInitial, maxExpires: o.MaxExpires,
		threshold: o.FailureThreshold, remove: o.RegisterResponseRemove, jitter: equalJitter,
	}
	if p.retry <= 0 {
		p.retry = 300 * time.Second
	}
	if p.backoffInitial <= 0 || p.backoffInitial > p.retry {
		p.backoffInitial = min(5*time.Second, p.retry)
	}
	if p.maxExpires <= 0 {
		p.maxExpires = 86400
	}
	if p.threshold <= 0 {
		p.threshold = 3
	}
	return p
}

// equalJitter spreads retries of many agents over [d/2, d] while keeping the
// backoff growing: step n+1's range starts where step n's ends.
func equalJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// outcome is one attempt as the policy sees it.
type outcome struct {
	code       int    // final status; 0 when nothing came back (transport error)
	retryAfter string // Retry-After header value
	minExpires string // Min-Expires header value
	challenged bool   // the final answer is to a request with credentials
	expires    int    // the expiry asked for
	backoff    int    // consecutive backoff decisions before this one
	failures   int    // counted failures before this one
}

// verdict is the policy's answer to an outcome.
type verdict struct {
	decision Decision
	delay    time.Duration
	expires  int  // expiry to ask for next
	counted  bool // counts towards the failure threshold
	failures int  // counted failures after this outcome
	backoff  int  // consecutive backoff decisions after this outcome
}

func outcomeOf(res *sip.Response, sent *sip.Request, expires int) outcome {
	o := outcome{expires: expires}
	if res == nil {
		return o
	}
	o.code = res.StatusCode
	if h := res.GetHeader("Retry-After"); h != nil {
		o.retryAfter = h.Value()
	}
	if h := res.GetHeader("Min-Expires"); h != nil {
		o.minExpires = h.Value()
	}
	if sent != nil && (sent.GetHeader("Authorization") != nil || sent.GetHeader("Proxy-Authorization") != nil) {
		o.challenged = true
	}
	return o
}

// decide maps an outcome to what happens next. 200 is handled by the
// caller (the refresh depends on the granted expiry); decide covers failures.
func (p policy) decide(o outcome) verdict {
	v := verdict{expires: o.expires, failures: o.failures}
	if o.code != 0 && slices.Contains(p.remove, o.code) {
		v.counted = true
		v.failures++
		if v.failures >= p.threshold {
			v.decision = DecisionDisable
			return v
		}
	}
	switch {
	case o.code == 423:
		if n, ok := leadingInt(o.minExpires); ok && min(n, p.maxExpires) > o.expires && !v.counted {
			v.decision, v.expires = DecisionMinExpires, min(n, p.maxExpires)
			return v
		}
	case o.code == 480 || o.code >= 500 && o.code < 600:
		if n, ok := leadingInt(o.retryAfter); ok {
			v.decision = DecisionRetryAfter
			v.delay = min(max(time.Duration(n)*time.Second, time.Second), retryAfterMax)
			return v
		}
	}
	if o.code == 0 || o.code == 408 || o.code >= 500 && o.code < 600 {
		v.decision = DecisionBackoff
		d := p.backoffInitial
		for i := 0; i < o.backoff && d < p.retry; i++ {
			d *= 2
		}
		v.delay = p.jitter(min(d, p.retry))
		v.backoff = o.backoff + 1
		return v
	}
	v.decision, v.delay = DecisionRetry, p.retry
	return v
}

// leadingInt reads the delta-seconds at the start of a Retry-After or
// Min-Expires value ("120 (maintenance);duration=60" gives 120).
func leadingInt(s string) (int, bool) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 || end > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}
