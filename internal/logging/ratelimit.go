package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RateLimit wraps h so that warnings and errors with the same message are
// written at most burst times per window; the next one written after a
// suppression carries "suppressed": <count>. A failing Redis or a flood of
// malformed packets then costs a few lines per second, not one per request.
// Debug and info records pass untouched.
func RateLimit(h slog.Handler, burst int, window time.Duration) slog.Handler {
	return &limiter{Handler: h, burst: burst, window: window, state: &limitState{seen: map[string]*msgCount{}}}
}

type limiter struct {
	slog.Handler
	burst  int
	window time.Duration
	state  *limitState
}

type limitState struct {
	mu   sync.Mutex
	seen map[string]*msgCount
}

type msgCount struct {
	start      time.Time
	n          int
	suppressed int
}

// maxTracked bounds the map when messages vary (they should not: messages
// are constant, details go in attributes).
const maxTracked = 1024

func (l *limiter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return l.Handler.Handle(ctx, r)
	}
	s := l.state
	s.mu.Lock()
	c := s.seen[r.Message]
	if c == nil || r.Time.Sub(c.start) >= l.window {
		if c == nil && len(s.seen) >= maxTracked {
			s.seen = map[string]*msgCount{}
		}
		prev := 0
		if c != nil {
			prev = c.suppressed
		}
		c = &msgCount{start: r.Time, suppressed: prev}
		s.seen[r.Message] = c
	}
	c.n++
	if c.n > l.burst {
		c.suppressed++
		s.mu.Unlock()
		return nil
	}
	suppressed := c.suppressed
	c.suppressed = 0
	s.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return l.Handler.Handle(ctx, r)
}

func (l *limiter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limiter{Handler: l.Handler.WithAttrs(attrs), burst: l.burst, window: l.window, state: l.state}
}

func (l *limiter) WithGroup(name string) slog.Handler {
	return &limiter{Handler: l.Handler.WithGroup(name), burst: l.burst, window: l.window, state: l.state}
}
