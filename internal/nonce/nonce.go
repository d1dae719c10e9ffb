// Package nonce issues digest nonces the server can verify later without
// keeping them: a nonce carries its issue time and an HMAC over it, so any
// instance sharing the secret can check it, and a stale one is recognised.
// It also claims nonce counts (nc) so a captured Authorization cannot be
// replayed: per process with bounded memory, and cluster-wide through a
// shared store (Redis) when instances share the secret.
package nonce

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Verdict is the result of checking a nonce.
type Verdict int

const (
	// Valid: issued by us (or an instance sharing the secret), not expired.
	Valid Verdict = iota
	// Stale: ours but older than the TTL; the client should retry with a
	// new nonce (401 stale=true) without asking the user.
	Stale
	// Invalid: not ours, tampered with, or unreadable.
	Invalid
)

const (
	tsLen   = 8
	randLen = 8
	macLen  = 16
	rawLen  = tsLen + randLen + macLen
)

// Issuer issues and checks nonces.
type Issuer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time

	// Highest nc accepted per nonce, in generations of TTL/4 so that the
	// oldest are dropped first (whole generations, when they are older than
	// the TTL or when the table is full).
	mu      sync.Mutex
	gens    [generations]map[nonceKey]uint32
	rotated time.Time
	limit   int

	shared       SharedClaims // nil: claims are per process
	sharedPrefix string
}

// generations spans 5 x TTL/4: an entry lives at least one TTL.
const generations = 5

// nonceKey is the issue time and random part of a nonce: unique and a
// third of the text's size.
type nonceKey [tsLen + randLen]byte

// New returns an Issuer. An empty secret draws a random per-process one
// (then nonces only verify on this instance). maxTracked bounds the nc table.
func New(secret string, ttl time.Duration, maxTracked int) *Issuer {
	key := []byte(secret)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	if maxTracked <= 0 {
		maxTracked = 500_000 // ~25 MB; 1,500 authentications/s for 5 min
	}
	i := &Issuer{secret: key, ttl: ttl, now: time.Now, limit: maxTracked}
	for g := range i.gens {
		i.gens[g] = map[nonceKey]uint32{}
	}
	i.rotated = i.now()
	return i
}

// TTL is how long a nonce stays valid.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue returns a new nonce.
func (i *Issuer) Issue() string {
	var raw [rawLen]byte
	binary.BigEndian.PutUint64(raw[:tsLen], uint64(i.now().UnixMilli()))
	_, _ = rand.Read(raw[tsLen : tsLen+randLen])
	copy(raw[tsLen+randLen:], i.mac(raw[:tsLen+randLen]))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (i *Issuer) mac(b []byte) []byte {
	m := hmac.New(sha256.New, i.secret)
	m.Write(b)
	return m.Sum(nil)[:macLen]
}

// Check tells whether nonce is ours and fresh.
func (i *Issuer) Check(nonce string) Verdict {
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != rawLen {
		return Invalid
	}
	if !hmac.Equal(raw[tsLen+randLen:], i.mac(raw[:tsLen+randLen])) {
		return Invalid
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(raw[:tsLen])))
	age := i.now().Sub(issued)
	if age < -maxSkew { // issued in the future: clocks of instances disagree too much
		return Invalid
	}
	if age > i.ttl {
		return Stale
	}
	return Valid
}

// ErrReplay is returned when a nonce count was already claimed (or a higher
// one was, on this instance).
var ErrReplay = errors.New("nonce count reused")

// ErrShared wraps a failure of the shared claim store: the count could not
// be claimed cluster-wide, so the request must not go on.
var ErrShared = errors.New("nonce: shared claim store")

// SharedClaims records claims every instance sharing NONCE_SECRET sees
// (Redis SET NX PX: one command, so exactly one instance wins).
type SharedClaims interface {
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
}

// Share makes Claim also claim (nonce, nc) in claims under keys starting
// with prefix (the cluster's), so that a copy sent to another instance is
// refused too. Call it before the Issuer is used.
func (i *Issuer) Share(claims SharedClaims, prefix string) {
	i.shared, i.sharedPrefix = claims, prefix
}

// maxSkew is how far in the future Check accepts an issue time (clocks of
// instances disagree); a claim is kept that much longer than the TTL.
const maxSkew = time.Minute

// Claim marks nc (hex, empty when the client sent no qop) used for nonce,
// atomically: of concurrent claims of one (nonce, nc) exactly one succeeds,
// the others get ErrReplay. It runs before any authentication work and a
// claimed count stays used whatever the verdict, so a copy of a request
// still at the webhook cannot ride on it. On this instance the count must
// also be higher than any claimed before; across instances each (nonce, nc)
// is claimed once (a captured request carries one nc, and another nc needs
// the password). A failure of the shared store is wrapped in ErrShared.
//
// Claim is ClaimLocal followed by ClaimShared; a caller that can send the
// shared claim with its own round trip uses the two (and SharedTTL).
func (i *Issuer) Claim(ctx context.Context, nonce, nc string) error {
	key, err := i.ClaimLocal(nonce, nc)
	if err != nil || key == "" {
		return err
	}
	return i.ClaimShared(ctx, key)
}

// ClaimLocal claims (nonce, nc) on this instance and returns the key under
// which it must also be claimed cluster-wide ("" when claims are per
// process): SET key NX with SharedTTL, or ClaimShared. The local claim stays
// made whatever happens to the shared one.
func (i *Issuer) ClaimLocal(nonce, nc string) (string, error) {
	n, err := parseNC(nc)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrReplay, err)
	}
	k, ok := keyOf(nonce)
	if !ok {
		return "", ErrReplay
	}
	i.mu.Lock()
	if last, ok := i.lookup(k); ok && n <= last {
		i.mu.Unlock()
		return "", ErrReplay
	}
	i.rotate()
	for g := 1; g < generations; g++ {
		delete(i.gens[g], k)
	}
	i.gens[0][k] = n
	i.mu.Unlock()

	if i.shared == nil {
		return "", nil
	}
	return i.sharedPrefix + "nonce:" + base64.RawURLEncoding.EncodeToString(k[:]) + ":" + strconv.FormatUint(uint64(n), 16), nil
}

// SharedTTL is how long a cluster-wide claim must be kept: a nonce is
// accepted for the TTL, and for the clock skew of other instances.
func (i *Issuer) SharedTTL() time.Duration { return i.ttl + maxSkew }

// ClaimShared claims key (from ClaimLocal) in the shared store: ErrReplay
// when another request has it, an error wrapping ErrShared when the store
// failed.
func (i *Issuer) ClaimShared(ctx context.Context, key string) error {
	if i.shared == nil {
		return nil
	}
	won, err := i.shared.SetNX(ctx, key, "1", i.SharedTTL())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrShared, err)
	}
	if !won {
		return ErrReplay
	}
	return nil
}

// lookup finds the highest accepted count of k; i.mu is held.
func (i *Issuer) lookup(k nonceKey) (uint32, bool) {
	for _, g := range i.gens {
		if n, ok := g[k]; ok {
			return n, true
		}
	}
	return 0, false
}

// rotate starts a new generation every TTL/4, or early when the table is
// full, dropping the oldest; i.mu is held. A dropped entry only re-allows
// one replay of a nonce at the end of its life.
func (i *Issuer) rotate() {
	now := i.now()
	if now.Sub(i.rotated) < i.ttl/4 && i.tracked() < i.limit {
		return
	}
	copy(i.gens[1:], i.gens[:generations-1])
	i.gens[0] = map[nonceKey]uint32{}
	i.rotated = now
}

func (i *Issuer) tracked() int {
	n := 0
	for _, g := range i.gens {
		n += len(g)
	}
	return n
}

// Tracked returns how many nonces have a recorded count.
func (i *Issuer) Tracked() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.tracked()
}

func keyOf(nonce string) (nonceKey, bool) {
	var k nonceKey
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != rawLen {
		return k, false
	}
	copy(k[:], raw)
	return k, true
}

// parseNC reads an 8-hex-digit nonce count; without qop there is none and
// the nonce may be used once (count 0 then 1 is "already used").
func parseNC(nc string) (uint32, error) {
	if nc == "" {
		return 1, nil
	}
	n, err := strconv.ParseUint(nc, 16, 32)
	if err != nil || n == 0 {
		return 0, errors.New("nonce count is not a positive hex number")
	}
	return uint32(n), nil
}
