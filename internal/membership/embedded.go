package membership

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// memSets is the in-process backend: the same keys in a memstore, each step
// a Tx function doing what the Redis backend's transaction or script does.
type memSets struct{ kv *memstore.Store }

// step runs fn atomically and returns its result.
func step[T any](m memSets, fn func(tx *memstore.Tx) (T, error)) (T, error) {
	var v T
	err := m.kv.Update(func(tx *memstore.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v, err
}

func (m memSets) add(_ context.Context, key, member string, nowMs int64) (int64, error) {
	return step(m, func(tx *memstore.Tx) (int64, error) {
		if _, err := tx.SAdd(key, member); err != nil {
			return 0, err
		}
		if err := tx.HSet(lastSeenKey(key), map[string]string{member: strconv.FormatInt(nowMs, 10)}); err != nil {
			return 0, err
		}
		n, err := tx.SCard(key)
		return int64(n), err
	})
}

func (m memSets) remove(_ context.Context, key, member string) (int64, error) {
	return step(m, func(tx *memstore.Tx) (int64, error) {
		n, err := removeMembers(tx, key, member)
		return int64(n), err
	})
}

// removeMembers removes members and their stamps; it returns the set's size.
func removeMembers(tx *memstore.Tx, key string, members ...string) (int, error) {
	if _, err := tx.SRem(key, members...); err != nil {
		return 0, err
	}
	if err := tx.HDel(lastSeenKey(key), members...); err != nil {
		return 0, err
	}
	return tx.SCard(key)
}

func (m memSets) members(_ context.Context, key string) ([]string, error) {
	return step(m, func(tx *memstore.Tx) ([]string, error) { return tx.SMembers(key) })
}

func (m memSets) isMember(_ context.Context, key, member string) (bool, error) {
	return step(m, func(tx *memstore.Tx) (bool, error) { return tx.SIsMember(key, member) })
}

func (m memSets) drain(_ context.Context, drainedKey, fsKey, ip string) ([]string, error) {
	return step(m, func(tx *memstore.Tx) ([]string, error) {
		if _, err := tx.SAdd(drainedKey, ip); err != nil {
			return nil, err
		}
		all, err := tx.SMembers(fsKey)
		if err != nil {
			return nil, err
		}
		var removed []string
		for _, member := range all {
			if port, ok := strings.CutPrefix(member, ip+":"); ok && isPort(port) {
				removed = append(removed, member)
			}
		}
		if len(removed) > 0 {
			_, err = removeMembers(tx, fsKey, removed...)
		}
		return removed, err
	})
}

func (m memSets) undrain(_ context.Context, drainedKey, ip string) (bool, error) {
	return step(m, func(tx *memstore.Tx) (bool, error) {
		n, err := tx.SRem(drainedKey, ip)
		return n > 0, err
	})
}

func (m memSets) sweep(_ context.Context, key string, nowMs, expiresMs int64) ([]string, error) {
	return step(m, func(tx *memstore.Tx) ([]string, error) {
		all, err := tx.SMembers(key)
		if err != nil {
			return nil, err
		}
		seen, err := tx.HGetAll(lastSeenKey(key))
		if err != nil {
			return nil, err
		}
		now := strconv.FormatInt(nowMs, 10)
		var expired []string
		for _, member := range all {
			at, err := strconv.ParseInt(seen[member], 10, 64)
			switch {
			case err != nil:
				err = tx.HSet(lastSeenKey(key), map[string]string{member: now})
			case at < nowMs-expiresMs:
				expired = append(expired, member)
			}
			if err != nil {
				return nil, err
			}
			delete(seen, member)
		}
		// What is left in seen are stamps without a member.
		if gone := slices.Concat(expired, slices.Collect(maps.Keys(seen))); len(gone) > 0 {
			_, err = removeMembers(tx, key, gone...)
		}
		return expired, err
	})
}
