// Package redisstore keeps registrations in Redis in the format the rest of
// a jambonz cluster reads: `user:<aor>` JSON with a TTL, and the
// `active-user` sorted set (member user:<aor>, score = expiry in ms).
//
// It adds one structure of its own, a sorted set per realm
// (`active-user-realm:<realm>`, same members and scores), so that counting a
// realm's devices costs O(log N) instead of the original's ZSCAN of every
// registered user.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// Store is the Redis registration store.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

var _ store.Registrations = (*Store)(nil)

// New returns a store on rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb, now: time.Now} }

// Binding implements registrar.Store.
func (s *Store) Binding(ctx context.Context, aor string) (*registrar.Binding, error) {
	raw, err := s.rdb.Get(ctx, store.UserKey(aor)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", store.UserKey(aor), err)
	}
	var b registrar.Binding
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("redisstore: %s holds invalid JSON: %w", store.UserKey(aor), err)
	}
	return &b, nil
}

// addToRealm adds a member to a realm's index and makes the index expire
// with its longest-lived member: only CountRealm (hosting) prunes it, so a
// realm whose devices are gone must not leave a set behind forever.
var addToRealm = redis.NewScript(`
redis.call("ZADD", KEYS[1], ARGV[1], ARGV[2])
local top = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[1], top[2])
return 1`)

// Bind implements registrar.Store.
func (s *Store) Bind(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("redisstore: encoding binding: %w", err)
	}
	key := store.UserKey(aor)
	member := redis.Z{Score: float64(b.ExpiryTime), Member: key}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, payload, ttl)
		p.ZAdd(ctx, store.ActiveUsers, member)
		addToRealm.Eval(ctx, p, []string{store.RealmKey(store.RealmOf(aor))}, b.ExpiryTime, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: bind %s: %w", key, err)
	}
	return nil
}

// Unbind implements registrar.Store.
func (s *Store) Unbind(ctx context.Context, aor string) error {
	key := store.UserKey(aor)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.ZRem(ctx, store.ActiveUsers, key)
		p.ZRem(ctx, store.RealmKey(store.RealmOf(aor)), key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: unbind %s: %w", key, err)
	}
	return nil
}

// CountRealm implements registrar.Store: expired members are pruned first.
func (s *Store) CountRealm(ctx context.Context, realm string) (int, error) {
	return s.pruneAndCount(ctx, store.RealmKey(realm))
}

// Count prunes expired members of active-user and returns how many remain.
func (s *Store) Count(ctx context.Context) (int, error) {
	return s.pruneAndCount(ctx, store.ActiveUsers)
}

func (s *Store) pruneAndCount(ctx context.Context, key string) (int, error) {
	var card *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "0", s.nowMillis())
		card = p.ZCard(ctx, key)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: %w", key, err)
	}
	return int(card.Val()), nil
}

// List returns the unexpired bindings, optionally of one realm.
func (s *Store) List(ctx context.Context, realm string) (map[string]registrar.Binding, error) {
	set := store.ActiveUsers
	if realm != "" {
		set = store.RealmKey(realm)
	}
	keys, err := s.rdb.ZRangeByScore(ctx, set, &redis.ZRangeBy{Min: s.nowMillis(), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: list %s: %w", set, err)
	}
	out := map[string]registrar.Binding{}
	for _, k := range keys {
		aor := store.AoROf(k)
		b, err := s.Binding(ctx, aor)
		if err != nil {
			return nil, err
		}
		if b != nil {
			out[aor] = *b
		}
	}
	return out, nil
}

func (s *Store) nowMillis() string { return strconv.FormatInt(s.now().UnixMilli(), 10) }
