package memstore

import (
	"context"
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
// script (internal/events/redisbus), one atomic step.
func (s *Store) ClaimExpired(_ context.Context, set string, max int64, limit int) ([]Member, int, error) {
	var out []Member
	remaining := 0
	err := s.Update(func(tx *Tx) error {
		e, err := tx.of("claim", set, kindZSet, false)
		if err != nil || e == nil {
			return err
		}
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
		remaining = len(e.ZSet)
		if len(out) > 0 {
			tx.drop(set, e)
		}
		return nil
	})
	return out, remaining, err
}
