package sipfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

// Defaults of LoopOptions.
const (
	DefaultMaxInFlight    = 2048
	DefaultRequestTimeout = 30 * time.Second
	DefaultDrainTimeout   = 5 * time.Second
)

// retryAfter is the Retry-After (seconds) of the loop's own 503s: overload
// and shutdown are short-lived, a client should come back soon.
const retryAfter = "5"

// LoopOptions configure the serving loop; zero values are the defaults.
type LoopOptions struct {
	// MaxInFlight bounds concurrently handled requests; beyond it requests
	// are answered 503 with Retry-After at once.
	MaxInFlight int
	// RequestTimeout bounds one request's handling: the handler's context
	// ends after it.
	RequestTimeout time.Duration
	// DrainTimeout bounds how long Drain waits for requests in flight.
	DrainTimeout time.Duration
	// Observer, when set, learns how every request ended (metrics).
	Observer Observer
}

// Outcome is how the loop disposed of a request.
type Outcome uint8

// Outcomes, one per request.
const (
	// OutcomeHandled: the handler answered (whatever the code).
	OutcomeHandled Outcome = iota
	// OutcomeMalformed: refused by the strictness rules (CheckRequest).
	OutcomeMalformed
	// OutcomeOverloaded: refused 503, MaxInFlight requests were in flight.
	OutcomeOverloaded
	// OutcomeDraining: refused 503 while shutting down.
	OutcomeDraining
	// OutcomePanicked: the handler panicked (answered 500 unless it had
	// answered already).
	OutcomePanicked
	// OutcomeUnanswered: the handler returned without answering (500).
	OutcomeUnanswered
)

var outcomeNames = [...]string{"handled", "malformed", "overloaded", "draining", "panicked", "unanswered"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// RequestStats is what an Observer learns about one request.
type RequestStats struct {
	Method  string
	Outcome Outcome
	// Code is the status sent (NoAnswer when the request was dropped).
	Code    int
	Elapsed time.Duration
}

// Observer receives the RequestStats of every request the loop served. It
// is called on the request's goroutine and must not block.
type Observer interface {
	ObserveRequest(RequestStats)
}

// ConnCloser is implemented by a front's ResponseWriter when the request
// came in on a connection (TCP, TLS, WS): after answering a request whose
// message boundaries are in doubt the loop closes that connection, as
// nothing read from it afterwards can be trusted.
type ConnCloser interface {
	CloseConn() error
}

// ErrAnswered is returned by Respond when the request was answered already;
// the second answer is not sent.
var ErrAnswered = errors.New("sipfront: request already answered")

// middleware wraps a Handler, like net/http middleware: it answers itself
// and stops, or passes the request on to next.
type middleware func(next Handler) Handler

// Loop is the serving loop every front feeds: a request passes the
// strictness rules, admission (bounded in flight, refused while draining)
// and a deadline before it reaches the handler; panics are recovered here
// only, and every request gets exactly one answer (500 when the handler
// gives none). The loop knows nothing of transports or transactions: a
// front calls ServeSIP with a Request it translated from the wire and a
// ResponseWriter that translates the answer back.
type Loop struct {
	opts     LoopOptions
	log      *slog.Logger
	throttle *logging.Throttle
	chain    Handler

	slots chan struct{}

	mu       sync.Mutex
	inflight int64
	draining bool
	idle     chan struct{} // closed when inflight drops to 0 while draining
}

// NewLoop returns the loop serving h, logging to log (nil: slog.Default).
func NewLoop(h Handler, log *slog.Logger, o LoopOptions) *Loop {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	l := &Loop{opts: o, log: log, throttle: logging.NewThrottle(log, 10*time.Second), slots: make(chan struct{}, o.MaxInFlight)}
	l.chain = h
	for _, mw := range []middleware{l.deadline, l.admit, l.strict} { // innermost first
		l.chain = mw(l.chain)
	}
	return l
}

// ServeSIP serves one request and returns once it is answered. It is safe
// for concurrent use; the front decides on which goroutine it runs.
func (l *Loop) ServeSIP(ctx context.Context, w ResponseWriter, r *Request) {
	l.serve(ctx, w, r, l.chain)
}

// Overloaded answers r as the loop answers a request beyond MaxInFlight
// (503 with Retry-After, OutcomeOverloaded), without running the chain:
// for a front that queues requests itself and found its queue full.
func (l *Loop) Overloaded(ctx context.Context, w ResponseWriter, r *Request) {
	l.serve(ctx, w, r, HandlerFunc(l.overloaded))
}

// serve runs h for r with the loop's guarantees: panics recovered, exactly
// one answer, the Observer told how it ended.
func (l *Loop) serve(ctx context.Context, w ResponseWriter, r *Request, h Handler) {
	start := time.Now()
	a := &answer{w: w, log: l.log, method: string(r.Msg.Method)}
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("sip: panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			a.fallback(ctx, OutcomePanicked)
		}
		if l.opts.Observer != nil {
			code, outcome := a.result()
			l.opts.Observer.ObserveRequest(RequestStats{Method: a.method, Outcome: outcome, Code: code, Elapsed: time.Since(start)})
		}
	}()
	h.ServeSIP(ctx, a, r)
	if !a.answered() {
		l.log.Error("sip: handler sent no answer", "method", a.method)
		a.fallback(ctx, OutcomeUnanswered)
	}
}

// strict refuses what CheckRequest refuses before anything else runs.
func (l *Loop) strict(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		v := CheckRequest(r.Msg)
		if v == nil {
			next.ServeSIP(ctx, w, r)
			return
		}
		l.throttle.Info(fmt.Sprintf("strict:%d", v.Code), "sip: refusing malformed request", "method", string(r.Msg.Method),
			"source", r.Source.String(), "code", v.Code, "reason", v.Reason)
		refuse(ctx, w, v.Response(), OutcomeMalformed)
		if v.Framing {
			if c, ok := w.(ConnCloser); ok {
				_ = c.CloseConn()
			}
		}
	})
}

// admit counts the request in flight (so Drain waits for its answer) and
// refuses it while draining or when MaxInFlight requests are being handled.
func (l *Loop) admit(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		draining := l.enter()
		defer l.leave()
		if draining {
			refuse(ctx, w, unavailable(), OutcomeDraining)
			return
		}
		select {
		case l.slots <- struct{}{}:
			defer func() { <-l.slots }()
		default:
			l.overloaded(ctx, w, r)
			return
		}
		next.ServeSIP(ctx, w, r)
	})
}

// overloaded refuses r 503 with Retry-After. The warning is throttled
// (with a count of the lines it stood for): under overload a line per
// refused request would add to the load it reports.
func (l *Loop) overloaded(ctx context.Context, w ResponseWriter, r *Request) {
	l.throttle.Warn("overloaded", "sip: overloaded, answering 503", "method", string(r.Msg.Method), "source", r.Source.String())
	refuse(ctx, w, unavailable(), OutcomeOverloaded)
}

// deadline bounds the handler's time.
func (l *Loop) deadline(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		ctx, cancel := context.WithTimeout(ctx, l.opts.RequestTimeout)
		defer cancel()
		next.ServeSIP(ctx, w, r)
	})
}

func unavailable() *Response {
	return &Response{Code: 503, Headers: []Header{{Name: "Retry-After", Value: retryAfter}}}
}

// refuse answers on the loop's behalf, recording why.
func refuse(ctx context.Context, w ResponseWriter, res *Response, o Outcome) {
	if a, ok := w.(*answer); ok {
		a.setOutcome(o)
	}
	_ = w.Respond(ctx, res)
}

func (l *Loop) enter() (draining bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight++
	return l.draining
}

func (l *Loop) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if l.inflight == 0 && l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
}

// InFlight returns how many requests are being served.
func (l *Loop) InFlight() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// Draining reports whether Drain was called.
func (l *Loop) Draining() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}

// Drain refuses new requests from now on (503 with Retry-After) and waits,
// at most DrainTimeout or until ctx ends, for the requests in flight to be
// answered. It returns how many were still in flight.
func (l *Loop) Drain(ctx context.Context) int64 {
	l.mu.Lock()
	l.draining = true
	var idle chan struct{}
	if l.inflight > 0 {
		if l.idle == nil {
			l.idle = make(chan struct{})
		}
		idle = l.idle
	}
	l.mu.Unlock()
	if idle != nil {
		t := time.NewTimer(l.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if n := l.InFlight(); n > 0 {
		l.log.Warn("sip: shutting down with requests still in flight", "in_flight", n)
		return n
	}
	l.log.Info("sip: drained in-flight requests")
	return 0
}

// answer is the ResponseWriter the chain sees: it lets the first final
// answer through to the front's writer and refuses any other.
type answer struct {
	w      ResponseWriter
	log    *slog.Logger
	method string

	mu      sync.Mutex
	done    bool
	code    int
	outcome Outcome
}

func (a *answer) Respond(ctx context.Context, res *Response) error {
	// Final answers only: a provisional one would end a non-INVITE
	// transaction in drachtio-server, and leave the request unanswered here.
	if res.Code != NoAnswer && (res.Code < 200 || res.Code > 699) {
		return fmt.Errorf("sipfront: %d is not a final response", res.Code)
	}
	a.mu.Lock()
	if a.done {
		first := a.code
		a.mu.Unlock()
		a.log.Warn("sip: second answer refused", "method", a.method, "sent", first, "refused", res.Code)
		return ErrAnswered
	}
	a.done, a.code = true, res.Code
	a.mu.Unlock()
	return a.w.Respond(ctx, res)
}

// CloseConn closes the request's connection when it came in on one.
func (a *answer) CloseConn() error {
	if c, ok := a.w.(ConnCloser); ok {
		return c.CloseConn()
	}
	return nil
}

func (a *answer) answered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

func (a *answer) setOutcome(o Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.done {
		a.outcome = o
	}
}

func (a *answer) result() (int, Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.code, a.outcome
}

// fallback answers 500 unless an answer went out already.
func (a *answer) fallback(ctx context.Context, o Outcome) {
	a.mu.Lock()
	if a.done {
		if o == OutcomePanicked {
			a.outcome = o
		}
		a.mu.Unlock()
		return
	}
	a.outcome = o
	a.mu.Unlock()
	_ = a.Respond(ctx, &Response{Code: 500})
}
