// Package nonce issues digest nonces the server can verify later without
// keeping them: a nonce carries its issue time and an HMAC over it, so any
// instance sharing the secret can check it, and a stale one is recognised.
// It also tracks nonce counts (nc) so a captured Authorization cannot be
// replayed, with bounded memory.
package nonce

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
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

	mu    sync.Mutex
	seen  map[string]seenEntry // nonce -> highest nc accepted
	limit int
}

type seenEntry struct {
	nc      uint64
	expires time.Time
}

// New returns an Issuer. An empty secret draws a random per-process one
// (then nonces only verify on this instance). maxTracked bounds the nc table.
func New(secret string, ttl time.Duration, maxTracked int) *Issuer {
	key := []byte(secret)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	if maxTracked <= 0 {
		maxTracked = 100_000
	}
	return &Issuer{secret: key, ttl: ttl, now: time.Now, seen: map[string]seenEntry{}, limit: maxTracked}
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
	if age < -time.Minute { // issued in the future: clocks of instances disagree too much
		return Invalid
	}
	if age > i.ttl {
		return Stale
	}
	return Valid
}

// ErrReplay is returned when a nonce count does not increase.
var ErrReplay = errors.New("nonce count reused")

// CheckCount reports whether nc (hex, empty when the client sent no qop)
// is higher than any accepted for nonce. It does not record it.
func (i *Issuer) CheckCount(nonce, nc string) error {
	n, err := parseNC(nc)
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if e, ok := i.seen[nonce]; ok && n <= e.nc {
		return ErrReplay
	}
	return nil
}

// Accept records nc as used for nonce, once the credentials proved good:
// recording before would let anyone who saw the nonce lock its owner out.
func (i *Issuer) Accept(nonce, nc string) {
	n, err := parseNC(nc)
	if err != nil {
		return
	}
	now := i.now()
	i.mu.Lock()
	defer i.mu.Unlock()
	if e, ok := i.seen[nonce]; ok && n <= e.nc {
		return
	}
	if len(i.seen) >= i.limit {
		i.evict(now)
	}
	i.seen[nonce] = seenEntry{nc: n, expires: now.Add(i.ttl + time.Minute)}
}

// evict drops expired entries, and if that is not enough, arbitrary ones
// (a dropped entry only re-allows one replay of an old nonce, which is
// bounded by the TTL anyway). i.mu is held.
func (i *Issuer) evict(now time.Time) {
	for k, e := range i.seen {
		if now.After(e.expires) {
			delete(i.seen, k)
		}
	}
	for k := range i.seen {
		if len(i.seen) < i.limit*9/10 {
			break
		}
		delete(i.seen, k)
	}
}

// Tracked returns how many nonces have a recorded count.
func (i *Issuer) Tracked() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.seen)
}

// parseNC reads an 8-hex-digit nonce count; without qop there is none and
// the nonce may be used once (count 0 then 1 is "already used").
func parseNC(nc string) (uint64, error) {
	if nc == "" {
		return 1, nil
	}
	n, err := strconv.ParseUint(nc, 16, 64)
	if err != nil || n == 0 {
		return 0, errors.New("nonce count is not a positive hex number")
	}
	return n, nil
}
