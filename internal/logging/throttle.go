package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle writes at most one line per key and interval, counting the rest
// (the next line written carries "suppressed": <count>). Keys must be a small
// fixed set (a refusal reason, a transport), never a peer's address, so the
// table stays bounded. Unlike RateLimit it applies to every level and to a
// group of messages sharing a key: a flood of refused connections or
// malformed datagrams from many sources costs one line per interval.
type Throttle struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	seen map[string]*throttleEntry
}

type throttleEntry struct {
	last       time.Time
	suppressed int
}

// NewThrottle returns a Throttle writing to l at most once per key and every.
func NewThrottle(l *slog.Logger, every time.Duration) *Throttle {
	return &Throttle{log: l, every: every, seen: map[string]*throttleEntry{}}
}

func (t *Throttle) allow(key string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.seen[key]
	if e == nil {
		e = &throttleEntry{}
		t.seen[key] = e
	}
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < t.every {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

// Warn writes a warning unless key was written less than an interval ago.
func (t *Throttle) Warn(key, msg string, args ...any) { t.write(slog.LevelWarn, key, msg, args) }

// Info writes an info line unless key was written less than an interval ago.
func (t *Throttle) Info(key, msg string, args ...any) { t.write(slog.LevelInfo, key, msg, args) }

func (t *Throttle) write(level slog.Level, key, msg string, args []any) {
	n, ok := t.allow(key)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	t.log.Log(context.Background(), level, msg, args...)
}
