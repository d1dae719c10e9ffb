package logging

import (
	"container/list"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// SourceKey is the attribute naming a request's source ("ip:port"), set by
// the registrar and the OPTIONS handler on every line about a request.
const SourceKey = "source"

// Unlimited marks a line that PerSource must always write (add it to the
// line's attributes): the outcome of a successful request, which only a
// client with valid credentials can cause, must not be lost to a busy NAT
// address. It resolves to an empty group, which handlers do not write.
var Unlimited = slog.Any("log_unlimited", unlimitedMarker{})

type unlimitedMarker struct{}

func (unlimitedMarker) LogValue() slog.Value { return slog.GroupValue() }

// SourceLimitConfig configures PerSource.
type SourceLimitConfig struct {
	// Key is the attribute holding the source address ("ip:port" or "ip").
	Key string
	// Burst is how many info lines one source may write per Window.
	Burst  int
	Window time.Duration
	// MaxSources bounds the sources tracked (default 4096); the least
	// recently seen one is forgotten first.
	MaxSources int
}

// PerSource wraps h so that one source cannot grow the log at its request
// rate: after Burst info lines within Window from one source (an IPv4
// address or an IPv6 /64, whatever the port), its further info lines are
// dropped until the window ends. Two lines per source and window say so:
// "log: suppressing lines from this source" when the first is dropped and
// "log: lines from this source suppressed" with the count once the window is
// over (written with the source's next line, or when it is forgotten).
// Lines without the attribute or with Unlimited, debug lines and warnings
// pass untouched (RateLimit bounds warnings per message).
func PerSource(h slog.Handler, cfg SourceLimitConfig) slog.Handler {
	if cfg.Key == "" {
		cfg.Key = SourceKey
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 4096
	}
	return &perSource{h: h, base: h, cfg: cfg, state: &sourceTable{entries: map[string]*list.Element{}, lru: list.New()}}
}

type perSource struct {
	h      slog.Handler
	base   slog.Handler // h before WithAttrs/WithGroup: the notes' handler
	cfg    SourceLimitConfig
	state  *sourceTable
	source string // the Key attribute given to WithAttrs, if any
}

type sourceTable struct {
	mu      sync.Mutex
	entries map[string]*list.Element // of *sourceCount
	lru     *list.List               // front: most recently seen
}

type sourceCount struct {
	key        string
	start      time.Time // of the current window
	n          int       // lines in the window
	suppressed int       // lines dropped in the window
}

func (p *perSource) Enabled(ctx context.Context, l slog.Level) bool { return p.h.Enabled(ctx, l) }

func (p *perSource) WithAttrs(attrs []slog.Attr) slog.Handler {
	src := p.source
	for _, a := range attrs {
		if a.Key == p.cfg.Key {
			src = a.Value.String()
		}
	}
	return &perSource{h: p.h.WithAttrs(attrs), base: p.base, cfg: p.cfg, state: p.state, source: src}
}

func (p *perSource) WithGroup(name string) slog.Handler {
	return &perSource{h: p.h.WithGroup(name), base: p.base, cfg: p.cfg, state: p.state, source: p.source}
}

// summary is a line to write about a source's suppressed lines.
type summary struct {
	key        string
	suppressed int // 0: suppression starts
	since      time.Time
}

func (p *perSource) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo || r.Level >= slog.LevelWarn {
		return p.h.Handle(ctx, r)
	}
	src, unlimited := p.source, false
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case a.Key == p.cfg.Key:
			src = a.Value.String()
		case a.Value.Kind() == slog.KindLogValuer:
			if _, ok := a.Value.Any().(unlimitedMarker); ok {
				unlimited = true
			}
		}
		return true
	})
	if src == "" || unlimited {
		return p.h.Handle(ctx, r)
	}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	write, notes := p.state.count(sourceKeyOf(src), now, p.cfg)
	for _, s := range notes {
		p.note(ctx, now, s)
	}
	if !write {
		return nil
	}
	return p.h.Handle(ctx, r)
}

// count records one line of key at now; it reports whether to write it and
// the summaries to write first.
func (t *sourceTable) count(key string, now time.Time, cfg SourceLimitConfig) (bool, []summary) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var notes []summary
	var c *sourceCount
	if el, ok := t.entries[key]; ok {
		t.lru.MoveToFront(el)
		c = el.Value.(*sourceCount)
	} else {
		if t.lru.Len() >= cfg.MaxSources {
			old := t.lru.Remove(t.lru.Back()).(*sourceCount)
			delete(t.entries, old.key)
			if old.suppressed > 0 {
				notes = append(notes, summary{key: old.key, suppressed: old.suppressed, since: old.start})
			}
		}
		c = &sourceCount{key: key, start: now}
		t.entries[key] = t.lru.PushFront(c)
	}
	if now.Sub(c.start) >= cfg.Window || now.Before(c.start) {
		if c.suppressed > 0 {
			notes = append(notes, summary{key: key, suppressed: c.suppressed, since: c.start})
		}
		c.start, c.n, c.suppressed = now, 0, 0
	}
	c.n++
	if c.n <= cfg.Burst {
		return true, notes
	}
	c.suppressed++
	if c.suppressed == 1 {
		notes = append(notes, summary{key: key, since: c.start})
	}
	return false, notes
}

func (p *perSource) note(ctx context.Context, now time.Time, s summary) {
	var r slog.Record
	if s.suppressed == 0 {
		r = slog.NewRecord(now, slog.LevelInfo, "log: suppressing lines from this source", 0)
		r.AddAttrs(slog.String(p.cfg.Key, s.key), slog.Int("limit", p.cfg.Burst), slog.String("window", p.cfg.Window.String()))
	} else {
		r = slog.NewRecord(now, slog.LevelInfo, "log: lines from this source suppressed", 0)
		r.AddAttrs(slog.String(p.cfg.Key, s.key), slog.Int("suppressed", s.suppressed), slog.Time("since", s.since))
	}
	// Without this handler's With attributes: the notes are about the
	// source, not about the request that triggered them.
	_ = p.base.Handle(ctx, r)
}

// sourceKeyOf groups sources: an IPv4 address, an IPv6 /64 (one subscriber
// holds a whole /64, so counting single IPv6 addresses would bound nothing),
// else the text as given.
func sourceKeyOf(src string) string {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(src); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(src); err != nil {
		if len(src) > 64 {
			src = src[:64]
		}
		return src
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
