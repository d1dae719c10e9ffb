package regbot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenKey is the key contended for by a cluster's instances.
func TokenKey(clusterID string) string { return clusterID + ":regbot-token" }

// Leader is this instance's claim on <cluster>:regbot-token: only the
// instance holding the token registers to carriers.
type Leader struct {
	kv    KV
	key   string
	token string
	ttl   time.Duration
}

// NewLeader returns a contender for the cluster's regbot token with a random
// token; ttl is how long a claim lives without renewal.
func NewLeader(kv KV, clusterID string, ttl time.Duration) *Leader {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Leader{kv: kv, key: TokenKey(clusterID), token: hex.EncodeToString(b[:]), ttl: ttl}
}

// Key is the key contended for.
func (l *Leader) Key() string { return l.key }

// Token is this instance's token.
func (l *Leader) Token() string { return l.token }

// Claim takes the token when nobody holds it (atomic SET NX with expiry,
// unlike the original's SETNX then EXPIRE).
func (l *Leader) Claim(ctx context.Context) (bool, error) {
	ok, err := l.kv.SetNX(ctx, l.key, l.token, l.ttl)
	if err != nil {
		return false, fmt.Errorf("regbot: claim %s: %w", l.key, err)
	}
	return ok, nil
}

// Renew extends our claim only while the key still holds our token, so an
// instance that lost it never extends the new holder's; false means another
// instance holds the token or it expired.
func (l *Leader) Renew(ctx context.Context) (bool, error) {
	ok, err := l.kv.ExpireIfEqual(ctx, l.key, l.token, l.ttl)
	if err != nil {
		return false, fmt.Errorf("regbot: renew %s: %w", l.key, err)
	}
	return ok, nil
}

// Release gives the token up if we hold it.
func (l *Leader) Release(ctx context.Context) error {
	if _, err := l.kv.DelIfEqual(ctx, l.key, l.token); err != nil {
		return fmt.Errorf("regbot: release %s: %w", l.key, err)
	}
	return nil
}
