package breaker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

var errAnswer = errors.New("an answer, not an outage")

func newTest(probe Probe) *Breaker {
	return New("test", probe, Options{
		Interval: time.Millisecond,
		Outage:   func(err error) bool { return !errors.Is(err, errAnswer) },
		Log:      slog.New(slog.DiscardHandler),
	})
}

func TestBreaker_OutageOpensAnswersDoNot(t *testing.T) {
	b := newTest(func(context.Context) error { return nil })
	ctx := context.Background()
	if err := b.Observe(ctx, errAnswer); !errors.Is(err, errAnswer) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("answer: got %v", err)
	}
	if !b.Up() {
		t.Fatal("an answer opened the breaker")
	}
	err := b.Observe(ctx, io.EOF)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, io.EOF) {
		t.Fatalf("outage: got %v, want ErrUnavailable wrapping EOF", err)
	}
	if b.Up() {
		t.Fatal("an outage left the breaker closed")
	}
	var ue *UnavailableError
	if err := b.Allow(); !errors.As(err, &ue) || ue.Backend != "test" {
		t.Fatalf("Allow while open = %v", err)
	}
}

func TestBreaker_CallerGivingUpIsNotAnOutage(t *testing.T) {
	b := newTest(func(context.Context) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = b.Observe(ctx, io.EOF)
	if !b.Up() {
		t.Fatal("a cancelled caller opened the breaker")
	}
	_ = b.Observe(WithProbe(context.Background()), io.EOF)
	if !b.Up() {
		t.Fatal("a probe's failure opened the breaker")
	}
}

func TestBreaker_ProbeCloses(t *testing.T) {
	var healthy atomic.Bool
	var probes atomic.Int32
	b := newTest(func(ctx context.Context) error {
		if !IsProbe(ctx) {
			t.Error("probe context not marked")
		}
		probes.Add(1)
		if healthy.Load() {
			return nil
		}
		return io.EOF
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	b.Trip(io.EOF)
	for probes.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	if b.Up() {
		t.Fatal("closed while the probe fails")
	}
	healthy.Store(true)
	for !b.Up() {
		time.Sleep(time.Millisecond)
	}
	// And it opens and closes again.
	b.Trip(io.EOF)
	for !b.Up() {
		time.Sleep(time.Millisecond)
	}
}

func TestBreaker_CheckReportsOpenWithoutCalling(t *testing.T) {
	b := newTest(func(context.Context) error { return io.EOF })
	var calls int
	check := b.Check(func(context.Context) error { calls++; return io.EOF })
	if err := check(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("failing check = %v", err)
	}
	if err := check(context.Background()); !errors.Is(err, ErrUnavailable) || calls != 1 {
		t.Fatalf("check while open = %v after %d calls, want the open error without a call", err, calls)
	}
}

func TestBreaker_NilAllows(t *testing.T) {
	var b *Breaker
	if b.Allow() != nil || b.Observe(context.Background(), io.EOF) != io.EOF {
		t.Fatal("nil breaker must be transparent")
	}
}
