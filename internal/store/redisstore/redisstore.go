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
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// Store is the Redis registration store.
type Store struct {
	rdb rueidis.Client
	now func() time.Time
}

var _ store.Registrations = (*Store)(nil)

// New returns a store on rdb (internal/redisconn's client: behind the
// breaker).
func New(rdb rueidis.Client) *Store { return &Store{rdb: rdb, now: time.Now} }

// Binding implements registrar.Store.
func (s *Store) Binding(ctx context.Context, aor string) (*registrar.Binding, error) {
	key := store.UserKey(aor)
	raw, err := s.rdb.Do(ctx, s.rdb.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", key, err)
	}
	b, err := store.DecodeBinding(raw)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %s holds invalid JSON: %w", key, err)
	}
	return &b, nil
}

// script is a Lua script: EVALSHA, then EVAL when Redis does not know it
// (NOSCRIPT: after a restart).
type script struct {
	lua *rueidis.Lua
	src string
	sha string
}

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// bind writes a binding in one round trip and one atomic step: the
// `user:<aor>` JSON with its TTL, its `active-user` member and its realm
// index member, the realm index expiring with its longest-lived member
// (only CountRealm, in hosting mode, prunes it: a realm whose devices are
// gone must not leave a set behind forever). A script rather than
// MULTI/EXEC: the same writes without the two framing commands.
// ARGV: payload, ttl in ms (0: no expiry), expiry in ms, member.
var bind = newScript(BindSource)

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

// bindArgs are bind's keys and arguments.
func bindArgs(aor string, b *registrar.Binding, ttl time.Duration) (keys, args []string) {
	key := store.UserKey(aor)
	keys = []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	args = []string{rueidis.BinaryString(store.EncodeBinding(b)), strconv.FormatInt(max(ttl.Milliseconds(), 0), 10),
		strconv.FormatInt(b.ExpiryTime, 10), key}
	return keys, args
}

// Bind implements registrar.Store.
func (s *Store) Bind(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	keys, args := bindArgs(aor, &b, ttl)
	if err := bind.lua.Exec(ctx, s.rdb, keys, args).Error(); err != nil {
		return fmt.Errorf("redisstore: bind %s: %w", keys[0], err)
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
	keys, args := bindArgs(aor, &b, ttl)
	if err := s.withEvent(ctx, bind, keys, args, ev); err != nil {
		return fmt.Errorf("redisstore: bind %s: %w", keys[0], err)
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
	if err := s.withEvent(ctx, unbind, keys, []string{key}, ev); err != nil {
		return fmt.Errorf("redisstore: unbind %s: %w", key, err)
	}
	return nil
}

// withEvent pipelines EVALSHA of sc with ev's commands. It returns the
// script's error and leaves the event's in ev.Err. When Redis does not know
// the script yet (NOSCRIPT: after a restart), the event's commands have
// gone and the script is sent once more with EVAL, a second round trip.
func (s *Store) withEvent(ctx context.Context, sc script, keys, args []string, ev *events.Inline) error {
	c := s.rdb
	cmds := make(rueidis.Commands, 0, 3)
	cmds = append(cmds, c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if ev.KeepKey != "" {
		cmds = append(cmds, setCmd(c, ev.KeepKey, rueidis.BinaryString(ev.Keep), ev.KeepTTL))
	}
	if ev.Publish != nil {
		cmds = append(cmds, c.B().Publish().Channel(ev.Channel).Message(rueidis.BinaryString(ev.Publish)).Build())
	}
	res := c.DoMulti(ctx, cmds...)
	for _, r := range res[1:] {
		if err := r.Error(); err != nil {
			ev.Err = err
			break
		}
	}
	err := res[0].Error()
	if e, ok := rueidis.IsRedisErr(err); ok && e.IsNoScript() {
		err = c.Do(ctx, c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()).Error()
	}
	return err
}

// setCmd is SET key value, with PX ttl when ttl > 0 (go-redis' Set, which
// the service used before: no expiry for 0).
func setCmd(c rueidis.Client, key, value string, ttl time.Duration) rueidis.Completed {
	if ttl > 0 {
		return c.B().Set().Key(key).Value(value).PxMilliseconds(ttl.Milliseconds()).Build()
	}
	return c.B().Set().Key(key).Value(value).Build()
}

// setNXCmd is SET key value NX, with PX ttl when ttl > 0. Its answer is OK
// when it set the key, nil when the key existed.
func setNXCmd(c rueidis.Client, key, value string, ttl time.Duration) rueidis.Completed {
	if ttl > 0 {
		return c.B().Set().Key(key).Value(value).Nx().PxMilliseconds(ttl.Milliseconds()).Build()
	}
	return c.B().Set().Key(key).Value(value).Nx().Build()
}

// setNXResult reads setNXCmd's answer.
func setNXResult(r rueidis.RedisResult) (bool, error) {
	err := r.Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, err
}

// Lookup implements registrar.CombinedStore: the binding of l.AoR, whether
// l.BanKey exists and the SET NX PX of l.ClaimKey, pipelined in one round
// trip. The claim is made whatever the binding holds.
func (s *Store) Lookup(ctx context.Context, l registrar.Lookup) (registrar.Looked, error) {
	c := s.rdb
	key := store.UserKey(l.AoR)
	cmds := make(rueidis.Commands, 1, 3)
	cmds[0] = c.B().Get().Key(key).Build()
	exists, claim := -1, -1
	if l.BanKey != "" {
		exists = len(cmds)
		cmds = append(cmds, c.B().Exists().Key(l.BanKey).Build())
	}
	if l.ClaimKey != "" {
		claim = len(cmds)
		cmds = append(cmds, setNXCmd(c, l.ClaimKey, "1", l.ClaimTTL))
	}
	res := c.DoMulti(ctx, cmds...)
	for _, r := range res {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return registrar.Looked{}, fmt.Errorf("redisstore: lookup of %s: %w", key, err)
		}
	}
	var out registrar.Looked
	if exists >= 0 {
		n, _ := res[exists].AsInt64()
		out.Banned = n > 0
	}
	if claim >= 0 {
		out.Claimed, _ = setNXResult(res[claim])
	}
	raw, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return out, nil
	}
	if err != nil {
		out.BindingErr = fmt.Errorf("redisstore: get %s: %w", key, err)
		return out, nil
	}
	b, err := store.DecodeBinding(raw)
	if err != nil {
		out.BindingErr = fmt.Errorf("redisstore: %s holds invalid JSON: %w", key, err)
		return out, nil
	}
	out.Binding = &b
	return out, nil
}

// unbind removes a binding and its index members in one round trip and
// one atomic step, as bind writes them (no MULTI/EXEC framing).
// ARGV: member.
var unbind = newScript(`
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
return 1`)

// Unbind implements registrar.Store.
func (s *Store) Unbind(ctx context.Context, aor string) error {
	key := store.UserKey(aor)
	keys := []string{key, store.ActiveUsers, store.RealmKey(store.RealmOf(aor))}
	if err := unbind.lua.Exec(ctx, s.rdb, keys, []string{key}).Error(); err != nil {
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
	c := s.rdb
	res, err := redisconn.Tx(ctx, c,
		c.B().Zremrangebyscore().Key(key).Min("0").Max(s.nowMillis()).Build(),
		c.B().Zcard().Key(key).Build())
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: %w", key, err)
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: %w", key, err)
	}
	return int(n), nil
}

// List returns the unexpired bindings, optionally of one realm.
func (s *Store) List(ctx context.Context, realm string) (map[string]registrar.Binding, error) {
	set := store.ActiveUsers
	if realm != "" {
		set = store.RealmKey(realm)
	}
	keys, err := s.rdb.Do(ctx, s.rdb.B().Zrangebyscore().Key(set).Min(s.nowMillis()).Max("+inf").Build()).AsStrSlice()
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
