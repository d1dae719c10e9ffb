package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BanKV is what bans need of a key-value store.
type BanKV interface {
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	IncrWithin(ctx context.Context, key string, window time.Duration) (int, error)
	Exists(ctx context.Context, keys ...string) (int, error)
}

// Bans keeps the guard's bans (`<cluster>:ban:<key>`) and failure counts
// (`<cluster>:authfail:<key>`) in key-value stores. Over Redis both are the
// cluster's, so every instance agrees. In process they are two bounded
// memstores, so that a flood of sources can neither grow them without
// limit nor crowd the bans out with failure counts.
type Bans struct {
	bans, failures BanKV
	prefix         string
}

// NewBans returns bans under the cluster prefix; bans and failures may be
// the same store.
func NewBans(bans, failures BanKV, cluster string) *Bans {
	return &Bans{bans: bans, failures: failures, prefix: cluster + ":"}
}

// BanKey returns the store key that holds key's ban, so that a lookup can
// read it together with other keys (guard.Guard.AoRBanKey).
func (b *Bans) BanKey(key string) string { return b.prefix + "ban:" + key }

// Banned reports whether key is banned.
func (b *Bans) Banned(ctx context.Context, key string) (bool, error) {
	n, err := b.bans.Exists(ctx, b.BanKey(key))
	if err != nil {
		return false, fmt.Errorf("store: ban lookup: %w", err)
	}
	return n > 0, nil
}

// Ban bans key for d. A full in-process store keeps the bans it has.
func (b *Bans) Ban(ctx context.Context, key string, d time.Duration) error {
	if err := b.bans.Set(ctx, b.BanKey(key), "1", d); err != nil && !errors.Is(err, ErrFull) {
		return fmt.Errorf("store: ban: %w", err)
	}
	return nil
}

// Failure counts one failure in a window that starts with the first one.
// A full in-process store counts nothing new (under attack from many
// sources: the live windows go on counting).
func (b *Bans) Failure(ctx context.Context, key string, window time.Duration) (int, error) {
	n, err := b.failures.IncrWithin(ctx, b.prefix+"authfail:"+key, window)
	if errors.Is(err, ErrFull) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: failure count: %w", err)
	}
	return n, nil
}
