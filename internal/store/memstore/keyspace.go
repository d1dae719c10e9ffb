package memstore

import (
	"sort"
	"time"
)

// kind is the Redis type a key holds.
type kind string

const (
	kindString kind = "string"
	kindSet    kind = "set"
	kindZSet   kind = "zset"
	kindHash   kind = "hash"
)

// entry is one key: a value of one kind and an optional expiry, as in Redis.
type entry struct {
	Kind     kind               `json:"type"`
	Str      string             `json:"value,omitempty"`
	Set      map[string]bool    `json:"set,omitempty"`
	ZSet     map[string]float64 `json:"zset,omitempty"`
	Hash     map[string]string  `json:"hash,omitempty"`
	ExpireAt int64              `json:"expireAt,omitempty"` // ms epoch; 0 = never
}

func (e *entry) expired(nowMs int64) bool { return e.ExpireAt != 0 && e.ExpireAt <= nowMs }

// keyspace is a tiny subset of Redis semantics over plain maps. Callers
// hold the Store's mutex. Expired keys are invisible at once and removed
// lazily on access and by sweep, as Redis does.
type keyspace struct {
	keys map[string]*entry
}

func newKeyspace() *keyspace { return &keyspace{keys: map[string]*entry{}} }

// lookup returns the live entry of key, nil when absent or expired.
func (k *keyspace) lookup(key string, nowMs int64) *entry {
	e := k.keys[key]
	if e == nil {
		return nil
	}
	if e.expired(nowMs) {
		delete(k.keys, key)
		return nil
	}
	return e
}

// ofKind returns the live entry of key if it holds kind, creating it when
// create is set. A key of another kind yields (nil, false), like WRONGTYPE.
func (k *keyspace) ofKind(key string, want kind, nowMs int64, create bool) (*entry, bool) {
	e := k.lookup(key, nowMs)
	if e == nil {
		if !create {
			return nil, true
		}
		e = &entry{Kind: want}
		switch want {
		case kindSet:
			e.Set = map[string]bool{}
		case kindZSet:
			e.ZSet = map[string]float64{}
		case kindHash:
			e.Hash = map[string]string{}
		}
		k.keys[key] = e
		return e, true
	}
	return e, e.Kind == want
}

// dropIfEmpty removes collection keys that became empty, as Redis does.
func (k *keyspace) dropIfEmpty(key string, e *entry) {
	if e == nil {
		return
	}
	if (e.Kind == kindSet && len(e.Set) == 0) || (e.Kind == kindZSet && len(e.ZSet) == 0) ||
		(e.Kind == kindHash && len(e.Hash) == 0) {
		delete(k.keys, key)
	}
}

func expireAt(nowMs int64, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return nowMs + ttl.Milliseconds()
}

// sweep removes every expired key and returns how many it removed.
func (k *keyspace) sweep(nowMs int64) int {
	n := 0
	for key, e := range k.keys {
		if e.expired(nowMs) {
			delete(k.keys, key)
			n++
		}
	}
	return n
}

// zrangeByScore returns the members with min <= score, lowest score first.
func zrangeByScore(e *entry, min float64) []string {
	if e == nil {
		return nil
	}
	out := make([]string, 0, len(e.ZSet))
	for m, s := range e.ZSet {
		if s >= min {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		si, sj := e.ZSet[out[i]], e.ZSet[out[j]]
		if si != sj {
			return si < sj
		}
		return out[i] < out[j]
	})
	return out
}

// zremRangeByScore removes the members with score <= max.
func zremRangeByScore(e *entry, max float64) int {
	if e == nil {
		return 0
	}
	n := 0
	for m, s := range e.ZSet {
		if s <= max {
			delete(e.ZSet, m)
			n++
		}
	}
	return n
}
