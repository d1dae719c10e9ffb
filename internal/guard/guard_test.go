package guard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mapBans is a Bans without expiry (store.Bans is tested in internal/store).
type mapBans struct {
	mu       sync.Mutex
	banned   map[string]bool
	failures map[string]int
}

func newBans() *mapBans { return &mapBans{banned: map[string]bool{}, failures: map[string]int{}} }

func (m *mapBans) Banned(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.banned[key], nil
}

func (m *mapBans) Ban(_ context.Context, key string, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.banned[key] = true
	return nil
}

func (m *mapBans) Failure(_ context.Context, key string, _ time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures[key]++
	return m.failures[key], nil
}

func TestAdmit_ScannerUserAgents(t *testing.T) {
	g := New(Config{ScannerAgents: DefaultScanners}, newBans(), quiet())
	src := netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		ua   string
		want Verdict
	}{
		{"friendly-scanner", Scanner},
		{"SIPVicious 0.3", Scanner},
		{"sipcli/v1.8", Scanner},
		{"Zoiper rv2.10", Allow},
		{"", Allow},
	} {
		if got := g.Admit(context.Background(), src, tc.ua); got != tc.want {
			t.Errorf("Admit(%q) = %v, want %v", tc.ua, got, tc.want)
		}
	}
}

func TestAdmit_RateLimitPerIP(t *testing.T) {
	g := New(Config{RatePerIP: 1, Burst: 3}, newBans(), quiet())
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if v := g.Admit(ctx, a, ""); v != Allow {
			t.Fatalf("request %d within burst: %v", i, v)
		}
	}
	if v := g.Admit(ctx, a, ""); v != Limit {
		t.Errorf("request over burst = %v, want Limit", v)
	}
	if v := g.Admit(ctx, b, ""); v != Allow {
		t.Errorf("other IP = %v, want Allow", v)
	}
}

func TestAuthFailed_BansIPAfterLimit(t *testing.T) {
	g := New(Config{FailuresPerIP: 3, FailuresAoR: 5, Window: time.Minute, BanFor: time.Minute}, newBans(), quiet())
	ctx := context.Background()
	bad, good := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("203.0.113.10")
	for i := 0; i < 3; i++ {
		if v := g.Admit(ctx, bad, ""); v != Allow {
			t.Fatalf("attempt %d refused early: %v", i, v)
		}
		g.AuthFailed(ctx, bad, "john@example.com")
	}
	if v := g.Admit(ctx, bad, ""); v != Banned {
		t.Errorf("after 3 failures = %v, want Banned", v)
	}
	if v := g.Admit(ctx, good, ""); v != Allow {
		t.Errorf("other source = %v, want Allow", v)
	}
	if !g.AdmitAoR(ctx, "john@example.com") {
		t.Error("AoR banned below its own limit")
	}
	g.AuthFailed(ctx, good, "john@example.com")
	g.AuthFailed(ctx, good, "john@example.com")
	if g.AdmitAoR(ctx, "john@example.com") {
		t.Error("AoR not banned after 5 failures")
	}
}

func TestBlacklist_BansAtOnce(t *testing.T) {
	g := New(Config{}, newBans(), quiet())
	src := netip.MustParseAddr("192.0.2.7")
	g.Blacklist(context.Background(), src)
	if v := g.Admit(context.Background(), src, ""); v != Banned {
		t.Errorf("blacklisted source = %v, want Banned", v)
	}
}

func TestGenerations_Bounded(t *testing.T) {
	g := newGenerations[int](10, time.Hour)
	for i := 0; i < 1000; i++ {
		g.put(string(rune('a'+i%26))+string(rune(i)), i)
	}
	if n := g.len(); n > 20 {
		t.Errorf("holds %d entries, want <= 2 generations of 10", n)
	}
}

func TestGenerations_ForgetAfterTwoPeriods(t *testing.T) {
	now := time.Unix(0, 0)
	g := newGenerations[int](1000, time.Second)
	g.now, g.rotated = func() time.Time { return now }, now
	g.put("old", 1)
	for i := range 2 {
		now = now.Add(1100 * time.Millisecond)
		g.put(fmt.Sprint("new", i), i)
	}
	if _, ok := g.get("old"); ok {
		t.Error("an entry untouched for two periods is kept")
	}
	if n := g.len(); n != 2 {
		t.Errorf("holds %d entries, want the last two periods' 2", n)
	}
}

// The "not banned" answers are trusted for notBanFor and kept no longer
// than two of those periods.
func TestNotBan_KeptOnlyWhileTrusted(t *testing.T) {
	g := New(Config{}, newBans(), quiet())
	if g.notBan.period != notBanFor {
		t.Errorf("notBan period %v, want %v", g.notBan.period, notBanFor)
	}
}
