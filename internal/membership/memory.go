package membership

import (
	"context"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is the in-process implementation, for standalone mode (no Redis):
// one instance, so "last heard from" is simply kept next to each member.
type Memory struct {
	mu      sync.Mutex
	sets    map[string]map[string]time.Time // set name -> member -> last check-in
	expires time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// NewMemory returns empty in-process sets.
func NewMemory(expires time.Duration, log *slog.Logger) *Memory {
	return &Memory{sets: map[string]map[string]time.Time{}, expires: expires, now: time.Now, log: log}
}

func (m *Memory) set(name string) map[string]time.Time {
	s, ok := m.sets[name]
	if !ok {
		s = map[string]time.Time{}
		m.sets[name] = s
	}
	return s
}

// Add records a check-in of member in set and returns the set's size.
func (m *Memory) Add(_ context.Context, set, member string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set(set)
	s[member] = m.now()
	return int64(len(s)), nil
}

// Remove removes member from set and returns the set's size.
func (m *Memory) Remove(_ context.Context, set, member string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set(set)
	delete(s, member)
	return int64(len(s)), nil
}

// Members returns the sorted members of set.
func (m *Memory) Members(_ context.Context, set string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.sets[set]))
	for k := range m.sets[set] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// IsDrained reports whether the feature server ip is drained.
func (m *Memory) IsDrained(_ context.Context, ip string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sets[DrainedFS][ip]
	return ok, nil
}

// Drain adds ip to the drain list and removes its active-fs members.
func (m *Memory) Drain(_ context.Context, ip netip.Addr) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(DrainedFS)[ip.String()] = m.now()
	var removed []string
	prefix := ip.String() + ":"
	for member := range m.sets[ActiveFS] {
		if strings.HasPrefix(member, prefix) && isPort(member[len(prefix):]) {
			delete(m.sets[ActiveFS], member)
			removed = append(removed, member)
		}
	}
	sort.Strings(removed)
	return removed, nil
}

func isPort(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Undrain removes ip from the drain list; it reports whether it was there.
func (m *Memory) Undrain(_ context.Context, ip netip.Addr) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sets[DrainedFS][ip.String()]
	delete(m.sets[DrainedFS], ip.String())
	return ok, nil
}

// Sweep removes members not heard from within the expiry interval.
func (m *Memory) Sweep(context.Context) (map[string][]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	limit := m.now().Add(-m.expires)
	for _, set := range []string{ActiveFS, FSServiceURL, ActiveRTP} {
		for member, seen := range m.sets[set] {
			if seen.Before(limit) {
				delete(m.sets[set], member)
				out[set] = append(out[set], member)
			}
		}
	}
	return out, nil
}

// Run sweeps every interval until ctx ends.
func (m *Memory) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		removed, _ := m.Sweep(ctx)
		for set, members := range removed {
			m.log.Info("membership: expired members", "set", set, "members", strings.Join(members, ","))
		}
	}
}
