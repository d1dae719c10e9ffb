package guard

import (
	"context"
	"sync"
	"time"
)

// MemoryBans keeps bans and failure counts in process memory, bounded.
type MemoryBans struct {
	mu       sync.Mutex
	bans     map[string]time.Time
	failures map[string]failureWindow
	limit    int
	now      func() time.Time
}

type failureWindow struct {
	count int
	ends  time.Time
}

// NewMemoryBans returns in-process bans holding at most limit keys of each kind.
func NewMemoryBans(limit int) *MemoryBans {
	return &MemoryBans{bans: map[string]time.Time{}, failures: map[string]failureWindow{}, limit: limit, now: time.Now}
}

// Banned implements Bans.
func (m *MemoryBans) Banned(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.bans[key]
	if ok && m.now().After(until) {
		delete(m.bans, key)
		return false, nil
	}
	return ok, nil
}

// Ban implements Bans.
func (m *MemoryBans) Ban(_ context.Context, key string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if len(m.bans) >= m.limit {
		for k, until := range m.bans {
			if now.After(until) {
				delete(m.bans, k)
			}
		}
	}
	if len(m.bans) < m.limit {
		m.bans[key] = now.Add(d)
	}
	return nil
}

// Failure implements Bans.
func (m *MemoryBans) Failure(_ context.Context, key string, window time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	w, ok := m.failures[key]
	if !ok || now.After(w.ends) {
		if len(m.failures) >= m.limit {
			for k, fw := range m.failures {
				if now.After(fw.ends) {
					delete(m.failures, k)
				}
			}
			if len(m.failures) >= m.limit {
				return 1, nil // full of live windows: under attack from many sources; count nothing new
			}
		}
		w = failureWindow{ends: now.Add(window)}
	}
	w.count++
	m.failures[key] = w
	return w.count, nil
}
