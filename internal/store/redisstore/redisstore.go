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
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
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
	raw, err := s.rdb.Get(ctx, store.UserKey(aor)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", store.UserKey(aor), err)
	}
	b, err := store.DecodeBinding(raw)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %s holds invalid JSON: %w", store.UserKey(aor), err)
	}
	return &b, nil
}

// bind writes a binding in one round trip and one atomic step: the
// `user:<aor>` JSON with its TTL, its `active-user` member and its realm
// index member, the realm index expiring with its longest-lived member
// (only CountRealm, in hosting mode, prunes it: a realm whose devices are
// gone must not leave a set behind forever). A script rather than
// MULTI/EXEC: the same writes without the two framing commands.
// ARGV: payload, ttl in ms (0: no expiry), expiry in ms, member.
var bind = redis.NewScript(BindSource)

// BindSource is the Lua source of the binding write (KEYS: user:<aor>,
// active-user, the realm index; ARGV as bind's). Exported for
// bench/redisclient, which sends the same write through other clients.
const BindSource = `
if tonumber(ARGV[2]) > 0 then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
else
  redis.call("SET", KEYS[1], ARGV[1])
end
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[4])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[4])
local top = redis.call("ZRANGE", KEYS[3], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[3], top[2])
return 1`

// Bind implements registrar.Store.
func (s *Store) Bind(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	payload := store.EncodeBinding(&b)
	key := store.UserKey(aor)
	keys := []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	if err := bind.Run(ctx, s.rdb, keys, payload, max(ttl.Milliseconds(), 0), b.ExpiryTime, key).Err(); err != nil {
		return fmt.Errorf("redisstore: bind %s: %w", key, err)
	}
	return nil
}

var _ registrar.EventStore = (*Store)(nil)

// BindWith implements registrar.EventStore: the bind script, then the
// event's record SET and PUBLISH, in one pipelined round trip. Not inside
// the script: a failing publish must never fail the binding.
func (s *Store) BindWith(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration, ev *events.Inline) error {
	if ev == nil {
		return s.Bind(ctx, aor, b, ttl)
	}
	payload := store.EncodeBinding(&b)
	key := store.UserKey(aor)
	keys := []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	args := []any{payload, max(ttl.Milliseconds(), 0), b.ExpiryTime, key}
	if err := s.withEvent(ctx, bind, keys, args, ev); err != nil {
		return fmt.Errorf("redisstore: bind %s: %w", key, err)
	}
	return nil
}

// UnbindWith implements registrar.EventStore, as BindWith.
func (s *Store) UnbindWith(ctx context.Context, aor string, ev *events.Inline) error {
	if ev == nil {
		return s.Unbind(ctx, aor)
	}
	key := store.UserKey(aor)
	keys := []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	if err := s.withEvent(ctx, unbind, keys, []any{key}, ev); err != nil {
		return fmt.Errorf("redisstore: unbind %s: %w", key, err)
	}
	return nil
}

// withEvent pipelines EVALSHA of script with ev's commands. It returns the
// script's error and leaves the event's in ev.Err. When Redis does not know
// the script yet (NOSCRIPT: after a restart), the event's commands have
// gone and the script is sent once more with EVAL, a second round trip.
func (s *Store) withEvent(ctx context.Context, script *redis.Script, keys []string, args []any, ev *events.Inline) error {
	var run *redis.Cmd
	var cmds []redis.Cmder
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		run = script.EvalSha(ctx, p, keys, args...)
		if ev.KeepKey != "" {
			cmds = append(cmds, p.Set(ctx, ev.KeepKey, ev.Keep, ev.KeepTTL))
		}
		if ev.Publish != nil {
			cmds = append(cmds, p.Publish(ctx, ev.Channel, ev.Publish))
		}
		return nil
	})
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			ev.Err = err
			break
		}
	}
	err := run.Err()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = script.Eval(ctx, s.rdb, keys, args...).Err()
	}
	return err
}

// Lookup implements registrar.CombinedStore: the binding of l.AoR, whether
// l.BanKey exists and the SET NX PX of l.ClaimKey, pipelined in one round
// trip. The claim is made whatever the binding holds.
func (s *Store) Lookup(ctx context.Context, l registrar.Lookup) (registrar.Looked, error) {
	var get *redis.StringCmd
	var exists *redis.IntCmd
	var claim *redis.BoolCmd
	key := store.UserKey(l.AoR)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		if l.BanKey != "" {
			exists = p.Exists(ctx, l.BanKey)
		}
		if l.ClaimKey != "" {
			claim = p.SetNX(ctx, l.ClaimKey, "1", l.ClaimTTL)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return registrar.Looked{}, fmt.Errorf("redisstore: lookup of %s: %w", key, err)
	}
	var res registrar.Looked
	if exists != nil {
		res.Banned = exists.Val() > 0
	}
	if claim != nil {
		res.Claimed = claim.Val()
	}
	raw, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return res, nil
	}
	if err != nil {
		res.BindingErr = fmt.Errorf("redisstore: get %s: %w", key, err)
		return res, nil
	}
	b, err := store.DecodeBinding(raw)
	if err != nil {
		res.BindingErr = fmt.Errorf("redisstore: %s holds invalid JSON: %w", key, err)
		return res, nil
	}
	res.Binding = &b
	return res, nil
}

// unbind removes a binding and its index members in one round trip and
// one atomic step, as bind writes them (no MULTI/EXEC framing).
// ARGV: member.
var unbind = redis.NewScript(`
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
return 1`)

// Unbind implements registrar.Store.
func (s *Store) Unbind(ctx context.Context, aor string) error {
	key := store.UserKey(aor)
	keys := []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	if err := unbind.Run(ctx, s.rdb, keys, key).Err(); err != nil {
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
