// Package guard protects the registrar from the open internet: a per-IP
// request rate limit, known scanner User-Agents, and temporary bans of
// sources (and AoRs) after repeated authentication failures. Bans live in a
// Bans implementation (store.Bans): in Redis when configured, so that every
// instance of a cluster agrees, in a bounded in-process store otherwise.
package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
)

// Bans keeps bans and failure counts.
type Bans interface {
	// Banned reports whether key is banned.
	Banned(ctx context.Context, key string) (bool, error)
	// Ban bans key for d.
	Ban(ctx context.Context, key string, d time.Duration) error
	// Failure counts one failure of key and returns the count within the
	// window that started with the first failure.
	Failure(ctx context.Context, key string, window time.Duration) (int, error)
}

// Config tunes the guard; zero values disable the corresponding check.
type Config struct {
	RatePerIP     float64 // REGISTERs per second per source IP
	Burst         int
	FailuresPerIP int // failed authentications within Window before the IP is banned
	FailuresAoR   int // ... before the AoR is banned
	Window        time.Duration
	BanFor        time.Duration
	// Drop: banned or limited requests get no answer instead of 403/503.
	Drop bool
	// ScannerAgents are User-Agent substrings (lower case) refused at once.
	ScannerAgents []string
}

// DefaultScanners are User-Agents of well-known SIP scanners.
var DefaultScanners = []string{"friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipsak", "vaxsipuseragent", "pplsip", "iWar"}

// Verdict says what to do with a request.
type Verdict int

const (
	// Allow lets the request through.
	Allow Verdict = iota
	// Limit: over the rate limit.
	Limit
	// Banned: the source (or AoR) is banned.
	Banned
	// Scanner: a known scanner.
	Scanner
)

func (v Verdict) String() string {
	return [...]string{"allow", "rate-limited", "banned", "scanner"}[v]
}

// Guard applies Config.
type Guard struct {
	cfg  Config
	bans Bans
	log  *slog.Logger

	limiters *generations[*rate.Limiter]
	notBan   *generations[time.Time] // recent "not banned" answers, to spare a Redis round trip per request
}

// New returns a guard; with nil bans it bans nobody (a registrar built
// without a guard).
func New(cfg Config, bans Bans, log *slog.Logger) *Guard {
	if bans == nil {
		bans = noBans{}
	}
	for i, s := range cfg.ScannerAgents {
		cfg.ScannerAgents[i] = strings.ToLower(s)
	}
	return &Guard{
		cfg:      cfg,
		bans:     bans,
		log:      log,
		limiters: newGenerations[*rate.Limiter](100_000, time.Minute),
		notBan:   newGenerations[time.Time](100_000, notBanFor),
	}
}

// Drop tells whether refused requests get no answer.
func (g *Guard) Drop() bool { return g.cfg.Drop }

// Admit checks a request before any database or webhook work.
func (g *Guard) Admit(ctx context.Context, src netip.Addr, userAgent string) Verdict {
	if ua := strings.ToLower(userAgent); ua != "" {
		for _, s := range g.cfg.ScannerAgents {
			if strings.Contains(ua, s) {
				return Scanner
			}
		}
	}
	if g.cfg.RatePerIP > 0 {
		key := src.String()
		lim, ok := g.limiters.get(key)
		if !ok {
			lim = rate.NewLimiter(rate.Limit(g.cfg.RatePerIP), max(g.cfg.Burst, 1))
			g.limiters.put(key, lim)
		}
		if !lim.Allow() {
			return Limit
		}
	}
	if g.banned(ctx, "ip:"+src.String()) {
		return Banned
	}
	return Allow
}

// AdmitAoR tells whether authentication attempts for aor are allowed.
func (g *Guard) AdmitAoR(ctx context.Context, aor string) bool {
	if g.cfg.FailuresAoR <= 0 {
		return true
	}
	return !g.banned(ctx, "aor:"+aor)
}

// keyedBans is a Bans whose bans are keys of a shared store, so that a
// caller can read one together with its own keys (store.Bans).
type keyedBans interface {
	BanKey(key string) string
}

// AoRBanKey returns the store key of aor's ban when AdmitAoR would read it
// (AoR bans are on, the bans are keyed and no recent answer is kept), so
// that the caller can read it in its own round trip and hand the answer
// over with AoRBanRead.
func (g *Guard) AoRBanKey(aor string) (string, bool) {
	kb, ok := g.bans.(keyedBans)
	if !ok || g.cfg.FailuresAoR <= 0 {
		return "", false
	}
	if t, ok := g.notBan.get("aor:" + aor); ok && time.Since(t) < notBanFor {
		return "", false
	}
	return kb.BanKey("aor:" + aor), true
}

// AoRBanRead records the answer of a lookup of AoRBanKey's key: "not
// banned" is kept as AdmitAoR's own answer would be; a ban is not kept,
// so AdmitAoR reads it again and decides as always.
func (g *Guard) AoRBanRead(aor string, banned bool) {
	if !banned {
		g.notBan.put("aor:"+aor, time.Now())
	}
}

func (g *Guard) banned(ctx context.Context, key string) bool {
	if t, ok := g.notBan.get(key); ok && time.Since(t) < notBanFor {
		return false
	}
	b, err := g.bans.Banned(ctx, key)
	if err != nil {
		// Fail open: a ban store outage must not lock every phone out (and
		// every REGISTER needs the store anyway: it gets 503 further on).
		// A known outage was logged once by its breaker.
		level := slog.LevelWarn
		if errors.Is(err, breaker.ErrUnavailable) {
			level = slog.LevelDebug
		}
		g.log.Log(ctx, level, "guard: reading bans failed", "err", err)
		return false
	}
	if !b {
		g.notBan.put(key, time.Now())
	}
	return b
}

// AuthFailed counts a failed authentication of src for aor and bans when a
// threshold is reached.
func (g *Guard) AuthFailed(ctx context.Context, src netip.Addr, aor string) {
	if g.cfg.FailuresPerIP > 0 {
		g.count(ctx, "ip:"+src.String(), g.cfg.FailuresPerIP)
	}
	if g.cfg.FailuresAoR > 0 && aor != "" {
		g.count(ctx, "aor:"+aor, g.cfg.FailuresAoR)
	}
}

func (g *Guard) count(ctx context.Context, key string, limit int) {
	n, err := g.bans.Failure(ctx, key, g.cfg.Window)
	if err != nil {
		g.log.Warn("guard: counting failure failed", "err", err)
		return
	}
	if n >= limit {
		g.ban(ctx, key, "too many failed authentications", n)
	}
}

// Blacklist bans src at once (the webhook answered blacklist: true).
func (g *Guard) Blacklist(ctx context.Context, src netip.Addr) {
	g.ban(ctx, "ip:"+src.String(), "blacklisted by the registration webhook", 0)
}

func (g *Guard) ban(ctx context.Context, key, why string, failures int) {
	d := g.cfg.BanFor
	if d <= 0 {
		d = 10 * time.Minute
	}
	if err := g.bans.Ban(ctx, key, d); err != nil {
		g.log.Warn("guard: storing ban failed", "key", key, "err", err)
		return
	}
	g.notBan.delete(key)
	g.log.Warn("guard: banned", "key", key, "reason", why, "failures", failures, "ban_seconds", int(d.Seconds()))
}

// notBanFor is how long a "not banned" answer is trusted. It is also the
// period of the notBan generations: an answer is kept between one and two
// periods, never less than it is trusted, and not a minute longer (with a
// minute, every AoR registered in the last two minutes was held: ~14 MB of
// heap at 1,000 registrations/s, docs/performance.md).
const notBanFor = 2 * time.Second

// noBans keeps nothing.
type noBans struct{}

func (noBans) Banned(context.Context, string) (bool, error)                { return false, nil }
func (noBans) Ban(context.Context, string, time.Duration) error            { return nil }
func (noBans) Failure(context.Context, string, time.Duration) (int, error) { return 0, nil }

// generations is a bounded map: entries not touched for two periods (or
// pushed out when a generation fills up) are forgotten.
type generations[V any] struct {
	mu        sync.Mutex
	cur, prev map[string]V
	limit     int
	period    time.Duration
	rotated   time.Time
	now       func() time.Time
}

func newGenerations[V any](limit int, period time.Duration) *generations[V] {
	return &generations[V]{cur: map[string]V{}, prev: map[string]V{}, limit: limit, period: period, rotated: time.Now(), now: time.Now}
}

func (g *generations[V]) rotate() {
	if now := g.now(); len(g.cur) >= g.limit || now.Sub(g.rotated) > g.period {
		g.prev, g.cur = g.cur, make(map[string]V, len(g.cur))
		g.rotated = now
	}
}

func (g *generations[V]) get(k string) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	if v, ok := g.prev[k]; ok {
		g.rotate()
		g.cur[k] = v
		return v, true
	}
	var zero V
	return zero, false
}

func (g *generations[V]) put(k string, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotate()
	g.cur[k] = v
}

func (g *generations[V]) delete(k string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.cur, k)
	delete(g.prev, k)
}

func (g *generations[V]) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.cur) + len(g.prev)
}
