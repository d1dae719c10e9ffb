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

	// Highest nc accepted per nonce, in generations of TTL/4 so that the
	// oldest are dropped first (whole generations, when they are older than
	// the TTL or when the table is full).
	mu      sync.Mutex
	gens    [generations]map[nonceKey]uint32
	rotated time.Time
	limit   int
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
	k, ok := keyOf(nonce)
	if !ok {
		return ErrReplay
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if last, ok := i.lookup(k); ok && n <= last {
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
	k, ok := keyOf(nonce)
	if !ok {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if last, ok := i.lookup(k); ok && n <= last {
		return
	}
	i.rotate()
	for g := 1; g < generations; g++ {
		delete(i.gens[g], k)
	}
	i.gens[0][k] = n
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
