package membership

import (
	"context"
	"sort"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
)

// redisSets is the Redis backend: transactions and Lua scripts, atomic
// inside Redis whichever instance runs them.
type redisSets struct{ rdb rueidis.Client }

func (r redisSets) add(ctx context.Context, key, member string, nowMs int64) (int64, error) {
	c := r.rdb
	res, err := redisconn.Tx(ctx, c,
		c.B().Sadd().Key(key).Member(member).Build(),
		c.B().Hset().Key(lastSeenKey(key)).FieldValue().FieldValue(member, strconv.FormatInt(nowMs, 10)).Build(),
		c.B().Scard().Key(key).Build())
	if err != nil {
		return 0, err
	}
	return res[2].AsInt64()
}

func (r redisSets) remove(ctx context.Context, key, member string) (int64, error) {
	c := r.rdb
	res, err := redisconn.Tx(ctx, c,
		c.B().Srem().Key(key).Member(member).Build(),
		c.B().Hdel().Key(lastSeenKey(key)).Field(member).Build(),
		c.B().Scard().Key(key).Build())
	if err != nil {
		return 0, err
	}
	return res[2].AsInt64()
}

func (r redisSets) members(ctx context.Context, key string) ([]string, error) {
	m, err := r.rdb.Do(ctx, r.rdb.B().Smembers().Key(key).Build()).AsStrSlice()
	sort.Strings(m)
	return m, err
}

func (r redisSets) isMember(ctx context.Context, key, member string) (bool, error) {
	return r.rdb.Do(ctx, r.rdb.B().Sismember().Key(key).Member(member).Build()).AsBool()
}

// drainScript adds ARGV[1] to the drain list KEYS[1] and removes its
// `ip:port` members from active-fs (KEYS[2]) and their stamps (KEYS[3]).
var drainScript = rueidis.NewLuaScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local prefix = ARGV[1] .. ':'
local removed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if string.sub(m, 1, #prefix) == prefix and string.match(string.sub(m, #prefix + 1), '^%d+$') then
    redis.call('SREM', KEYS[2], m)
    redis.call('HDEL', KEYS[3], m)
    table.insert(removed, m)
  end
end
return removed
`)

func (r redisSets) drain(ctx context.Context, drainedKey, fsKey, ip string) ([]string, error) {
	return drainScript.Exec(ctx, r.rdb, []string{drainedKey, fsKey, lastSeenKey(fsKey)}, []string{ip}).AsStrSlice()
}

func (r redisSets) undrain(ctx context.Context, drainedKey, ip string) (bool, error) {
	n, err := r.rdb.Do(ctx, r.rdb.B().Srem().Key(drainedKey).Member(ip).Build()).AsInt64()
	return n > 0, err
}

// sweepScript removes the members of KEYS[1] whose last check-in
// (KEYS[2][member]) is older than ARGV[1] - ARGV[2], stamps members
// without a timestamp with ARGV[1], and drops timestamps without a member.
var sweepScript = rueidis.NewLuaScript(`
local now = tonumber(ARGV[1])
local limit = now - tonumber(ARGV[2])
local removed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local seen = tonumber(redis.call('HGET', KEYS[2], m))
  if not seen then
    redis.call('HSET', KEYS[2], m, ARGV[1])
  elseif seen < limit then
    redis.call('SREM', KEYS[1], m)
    redis.call('HDEL', KEYS[2], m)
    table.insert(removed, m)
  end
end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('SISMEMBER', KEYS[1], m) == 0 then
    redis.call('HDEL', KEYS[2], m)
  end
end
return removed
`)

func (r redisSets) sweep(ctx context.Context, key string, nowMs, expiresMs int64) ([]string, error) {
	return sweepScript.Exec(ctx, r.rdb, []string{key, lastSeenKey(key)},
		[]string{strconv.FormatInt(nowMs, 10), strconv.FormatInt(expiresMs, 10)}).AsStrSlice()
}
