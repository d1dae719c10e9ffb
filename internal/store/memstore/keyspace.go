package memstore

import (
	"sort"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
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

// newEntry returns an empty value of kind k.
func newEntry(k kind) *entry {
	e := &entry{Kind: k}
	switch k {
	case kindSet:
		e.Set = map[string]bool{}
	case kindZSet:
		e.ZSet = map[string]float64{}
	case kindHash:
		e.Hash = map[string]string{}
	}
	return e
}

// keyspace is a tiny subset of Redis semantics over plain maps. Callers
// hold the Store's mutex. Expired keys are invisible at once and removed
// lazily on access and by sweep, as Redis does.
type keyspace struct {
	keys map[string]*entry
	// max bounds the number of keys (0: unbounded); see Options.MaxKeys.
	max int
}

func newKeyspace(max int) *keyspace { return &keyspace{keys: map[string]*entry{}, max: max} }

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

// put stores e under key. A new key in a full keyspace is refused with
// store.ErrFull once expired keys are swept.
func (k *keyspace) put(key string, e *entry, nowMs int64) error {
	if _, ok := k.keys[key]; !ok && k.max > 0 && len(k.keys) >= k.max {
		if k.sweep(nowMs); len(k.keys) >= k.max {
			return store.ErrFull
		}
	}
	k.keys[key] = e
	return nil
}

// ofKind returns the live entry of key if it holds kind, creating it when
// create is set. A key of another kind yields ErrWrongType, as Redis'
// WRONGTYPE; an absent key without create yields (nil, nil).
func (k *keyspace) ofKind(key string, want kind, nowMs int64, create bool) (*entry, error) {
	e := k.lookup(key, nowMs)
	switch {
	case e != nil && e.Kind != want:
		return nil, ErrWrongType
	case e != nil || !create:
		return e, nil
	}
	e = newEntry(want)
	return e, k.put(key, e, nowMs)
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
