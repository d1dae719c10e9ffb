// Package breaker keeps the health state of one backend (Redis, MySQL): a
// circuit breaker that opens on the first connection-level failure, makes
// every later call fail at once with ErrUnavailable (no dial, no timeout),
// and is closed again by one background probe that checks the backend every
// interval. Without it each request would pay the dial and read timeouts of
// a dead backend while phones retransmit (docs/reliability.md).
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ErrUnavailable matches (errors.Is) every error of a call refused or
// failed because its backend is down.
var ErrUnavailable = errors.New("backend unavailable")

// UnavailableError says which backend is down, since when and why.
type UnavailableError struct {
	Backend string
	Since   time.Time
	Cause   error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s unavailable since %s: %v", e.Backend, e.Since.UTC().Format(time.RFC3339Nano), e.Cause)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap gives the failure that opened the breaker.
func (e *UnavailableError) Unwrap() error { return e.Cause }

// Probe checks the backend; it must bypass the breaker (see WithProbe).
type Probe func(ctx context.Context) error

// Options tune a breaker.
type Options struct {
	// Interval between probes while open (default 250 ms).
	Interval time.Duration
	// Timeout of one probe (default 1 s).
	Timeout time.Duration
	// Outage tells connection-level failures (the backend is gone) from
	// answers (a missing key, a SQL error): only outages open the breaker.
	// Default: every error is an outage.
	Outage func(error) bool
	Log    *slog.Logger
	// OnChange, when set, is told every transition (metrics).
	OnChange func(up bool)
}

// Breaker is the health state of one backend. The zero value is not usable;
// a nil *Breaker allows everything (backends without one).
type Breaker struct {
	name  string
	probe Probe
	opt   Options
	// down is nil while closed, the error calls get while open.
	down atomic.Pointer[UnavailableError]
	wake chan struct{}
}

// New returns a closed breaker for the named backend; Run must run for it
// to close again after opening.
func New(name string, probe Probe, opt Options) *Breaker {
	if opt.Interval <= 0 {
		opt.Interval = 250 * time.Millisecond
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Outage == nil {
		opt.Outage = func(error) bool { return true }
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Breaker{name: name, probe: probe, opt: opt, wake: make(chan struct{}, 1)}
}

// Name is the backend's name.
func (b *Breaker) Name() string { return b.name }

// Allow returns nil while the backend is up, an *UnavailableError at once
// while it is down.
func (b *Breaker) Allow() error {
	if b == nil {
		return nil
	}
	if d := b.down.Load(); d != nil {
		return d
	}
	return nil
}

// Up reports whether the breaker is closed.
func (b *Breaker) Up() bool { return b.Allow() == nil }

// Observe looks at the result of a call made with ctx. An outage (not an
// answer, not the caller giving up) opens the breaker; the returned error
// then matches ErrUnavailable and wraps err. Other errors come back as they
// are.
func (b *Breaker) Observe(ctx context.Context, err error) error {
	if b == nil || err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if ctx.Err() != nil || !b.opt.Outage(err) {
		return err // the caller gave up, or the backend answered
	}
	if IsProbe(ctx) {
		return err // the probe's failures keep it open, they do not reopen it
	}
	return b.Trip(err)
}

// Trip opens the breaker (if closed) with cause and returns the error calls
// get while it is open.
func (b *Breaker) Trip(cause error) error {
	d := &UnavailableError{Backend: b.name, Since: time.Now(), Cause: cause}
	if b.down.CompareAndSwap(nil, d) {
		b.opt.Log.Error("backend down: failing fast until a probe succeeds", "backend", b.name, "err", cause,
			"probe_interval_ms", b.opt.Interval.Milliseconds())
		if b.opt.OnChange != nil {
			b.opt.OnChange(false)
		}
		select {
		case b.wake <- struct{}{}:
		default:
		}
		return d
	}
	if cur := b.down.Load(); cur != nil {
		return &UnavailableError{Backend: b.name, Since: cur.Since, Cause: cause}
	}
	return d // closed again meanwhile: still report this call's failure as an outage
}

// Check is a readiness check: the open error while down, otherwise the
// result of check (observed, so that a failing readiness probe opens the
// breaker too).
func (b *Breaker) Check(check func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := b.Allow(); err != nil {
			return err
		}
		return b.Observe(ctx, check(ctx))
	}
}

// Run probes the backend while the breaker is open, until ctx ends. The
// first probe runs at once (a single broken connection should cost
// milliseconds, not an interval), then one every Interval.
func (b *Breaker) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		for b.down.Load() != nil && !b.probeOnce(ctx) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(b.opt.Interval):
			}
		}
	}
}

// probeOnce runs one probe and closes the breaker when it succeeds.
func (b *Breaker) probeOnce(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(WithProbe(ctx), b.opt.Timeout)
	err := b.probe(pctx)
	cancel()
	if err != nil {
		b.opt.Log.Debug("backend probe failed", "backend", b.name, "err", err)
		return false
	}
	d := b.down.Swap(nil)
	if d != nil {
		b.opt.Log.Info("backend up: probe succeeded", "backend", b.name,
			"down_ms", time.Since(d.Since).Milliseconds())
		if b.opt.OnChange != nil {
			b.opt.OnChange(true)
		}
	}
	return true
}

type probeKey struct{}

// WithProbe marks ctx as the probe's: gates let its calls through while
// the breaker is open.
func WithProbe(ctx context.Context) context.Context { return context.WithValue(ctx, probeKey{}, true) }

// IsProbe reports whether ctx is a probe's.
func IsProbe(ctx context.Context) bool { v, _ := ctx.Value(probeKey{}).(bool); return v }
