package regbot

import (
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
)

func testPolicy() policy {
	p := newPolicy(Options{Regbot: config.Regbot{
		FailureRetryInterval: 300 * time.Second, BackoffInitial: 5 * time.Second, MaxExpires: 86400,
		FailureThreshold: 3, RegisterResponseRemove: []int{403, 404},
	}})
	p.jitter = func(d time.Duration) time.Duration { return d } // the upper end, deterministic
	return p
}

func TestPolicy_DecisionPerAnswer(t *testing.T) {
	p := testPolicy()
	tests := []struct {
		name    string
		in      outcome
		want    Decision
		delay   time.Duration
		expires int
		counted bool
	}{
		{"423 asks for Min-Expires at once", outcome{code: 423, minExpires: "7200", expires: 3600}, DecisionMinExpires, 0, 7200, false},
		{"423 Min-Expires capped", outcome{code: 423, minExpires: "999999", expires: 3600}, DecisionMinExpires, 0, 86400, false},
		{"423 without Min-Expires: plain retry", outcome{code: 423, expires: 3600}, DecisionRetry, 300 * time.Second, 3600, false},
		{"423 not above what was asked: no loop", outcome{code: 423, minExpires: "3600", expires: 3600}, DecisionRetry, 300 * time.Second, 3600, false},
		{"503 Retry-After", outcome{code: 503, retryAfter: "3", expires: 3600}, DecisionRetryAfter, 3 * time.Second, 3600, false},
		{"500 Retry-After with comment", outcome{code: 500, retryAfter: "120 (maintenance);duration=60", expires: 3600}, DecisionRetryAfter, 120 * time.Second, 3600, false},
		{"480 Retry-After", outcome{code: 480, retryAfter: "10", expires: 3600}, DecisionRetryAfter, 10 * time.Second, 3600, false},
		{"Retry-After bounded", outcome{code: 503, retryAfter: "99999", expires: 3600}, DecisionRetryAfter, time.Hour, 3600, false},
		{"Retry-After 0: at least 1 s", outcome{code: 503, retryAfter: "0", expires: 3600}, DecisionRetryAfter, time.Second, 3600, false},
		{"503 without Retry-After: backoff", outcome{code: 503, expires: 3600}, DecisionBackoff, 5 * time.Second, 3600, false},
		{"timeout: backoff", outcome{code: 408, expires: 3600}, DecisionBackoff, 5 * time.Second, 3600, false},
		{"transport error: backoff", outcome{code: 0, expires: 3600}, DecisionBackoff, 5 * time.Second, 3600, false},
		{"Retry-After garbage: backoff", outcome{code: 503, retryAfter: "soon", expires: 3600}, DecisionBackoff, 5 * time.Second, 3600, false},
		{"401 after challenge, not listed: retry, not counted", outcome{code: 401, challenged: true, expires: 3600}, DecisionRetry, 300 * time.Second, 3600, false},
		{"403 listed: counted", outcome{code: 403, expires: 3600}, DecisionRetry, 300 * time.Second, 3600, true},
		{"480 without Retry-After: retry", outcome{code: 480, expires: 3600}, DecisionRetry, 300 * time.Second, 3600, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.decide(tt.in)
			if v.decision != tt.want || v.delay != tt.delay || v.expires != tt.expires || v.counted != tt.counted {
				t.Fatalf("got %+v, want decision %s delay %s expires %d counted %v", v, tt.want, tt.delay, tt.expires, tt.counted)
			}
		})
	}
}

func TestPolicy_ListedChallengeFailureCountsAndDisablesAtThreshold(t *testing.T) {
	p := testPolicy()
	p.remove = []int{401}
	o := outcome{code: 401, challenged: true, expires: 3600}
	var got []Decision
	for i := 0; i < 3; i++ {
		v := p.decide(o)
		got = append(got, v.decision)
		o.failures = v.failures
	}
	if want := []Decision{DecisionRetry, DecisionRetry, DecisionDisable}; !equalDecisions(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	// A listed 503 counts even with Retry-After.
	p.remove = []int{503}
	if v := p.decide(outcome{code: 503, retryAfter: "3", failures: 2}); v.decision != DecisionDisable {
		t.Fatalf("listed 503 at the threshold: %+v", v)
	}
}

func equalDecisions(a, b []Decision) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPolicy_BackoffDoublesUpToRetryIntervalAndResets(t *testing.T) {
	p := testPolicy()
	o := outcome{code: 408, expires: 3600}
	var delays []time.Duration
	for i := 0; i < 8; i++ {
		v := p.decide(o)
		delays = append(delays, v.delay)
		o.backoff = v.backoff
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 300, 300}
	for i := range want {
		if delays[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v s", delays, want)
		}
	}
}

func TestEqualJitter_WithinHalfAndFullAndGrowing(t *testing.T) {
	for i := 0; i < 1000; i++ {
		d := time.Duration(1+i) * time.Millisecond
		j := equalJitter(d)
		if j < d/2 || j > d {
			t.Fatalf("equalJitter(%s) = %s", d, j)
		}
		// The next step's range [d, 2d] never starts below this one's end.
		if n := equalJitter(2 * d); n < j {
			t.Fatalf("backoff shrank: %s after %s", n, j)
		}
	}
}
