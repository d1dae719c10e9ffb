package membership

import (
	"context"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// redisSets is the Redis backend: transactions and Lua scripts, atomic
// inside Redis whichever instance runs them.
type redisSets struct{ rdb redis.UniversalClient }

func (r redisSets) add(ctx context.Context, key, member string, nowMs int64) (int64, error) {
	var card *redis.IntCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, member)
		p.HSet(ctx, lastSeenKey(key), member, nowMs)
		card = p.SCard(ctx, key)
		return nil
	})
	return card.Val(), err
}

func (r redisSets) remove(ctx context.Context, key, member string) (int64, error) {
	var card *redis.IntCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, key, member)
		p.HDel(ctx, lastSeenKey(key), member)
		card = p.SCard(ctx, key)
		return nil
	})
	return card.Val(), err
}

func (r redisSets) members(ctx context.Context, key string) ([]string, error) {
	m, err := r.rdb.SMembers(ctx, key).Result()
	sort.Strings(m)
	return m, err
}

func (r redisSets) isMember(ctx context.Context, key, member string) (bool, error) {
	return r.rdb.SIsMember(ctx, key, member).Result()
}

// drainScript adds ARGV[1] to the drain list KEYS[1] and removes its
// `ip:port` members from active-fs (KEYS[2]) and their stamps (KEYS[3]).
var drainScript = redis.NewScript(`
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
	return drainScript.Run(ctx, r.rdb, []string{drainedKey, fsKey, lastSeenKey(fsKey)}, ip).StringSlice()
}

func (r redisSets) undrain(ctx context.Context, drainedKey, ip string) (bool, error) {
	n, err := r.rdb.SRem(ctx, drainedKey, ip).Result()
	return n > 0, err
}

// sweepScript removes the members of KEYS[1] whose last check-in
// (KEYS[2][member]) is older than ARGV[1] - ARGV[2], stamps members
// without a timestamp with ARGV[1], and drops timestamps without a member.
var sweepScript = redis.NewScript(`
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
	return sweepScript.Run(ctx, r.rdb, []string{key, lastSeenKey(key)},
		strconv.FormatInt(nowMs, 10), strconv.FormatInt(expiresMs, 10)).StringSlice()
}
