package memstore

import (
	"context"
	"fmt"
	"sort"
)

// Member is a sorted set member with its score.
type Member struct {
	Key   string
	Score float64
}

// ClaimExpired removes the members of the sorted set whose score is at or
// below max (at most limit, lowest score first) and returns them, and how
// many members remain: the embedded counterpart of the expiry sweep's Lua
// script (internal/events/redisbus), atomic under the store's mutex.
func (s *Store) ClaimExpired(_ context.Context, set string, max int64, limit int) ([]Member, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ks.ofKind(set, kindZSet, s.nowMs(), false)
	if !ok {
		return nil, 0, fmt.Errorf("memstore: claim %s: %w", set, ErrWrongType)
	}
	if e == nil {
		return nil, 0, nil
	}
	var out []Member
	for m, score := range e.ZSet {
		if score <= float64(max) {
			out = append(out, Member{Key: m, Score: score})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score < out[j].Score
		}
		return out[i].Key < out[j].Key
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	for _, m := range out {
		delete(e.ZSet, m.Key)
	}
	if len(out) > 0 {
		s.dirty++
	}
	remaining := len(e.ZSet)
	s.ks.dropIfEmpty(set, e)
	return out, remaining, nil
}
