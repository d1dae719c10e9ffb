package nonce

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck_VerdictByAgeAndOrigin(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	iss := New("shared", 300*time.Second, 10)
	iss.now = func() time.Time { return now }
	fresh := iss.Issue()

	other := New("other-secret", 300*time.Second, 10)
	other.now = iss.now
	foreign := other.Issue()

	tampered := []byte(fresh)
	tampered[3] ^= 1

	for _, tc := range []struct {
		name  string
		nonce string
		after time.Duration
		want  Verdict
	}{
		{"fresh", fresh, 0, Valid},
		{"just before expiry", fresh, 299 * time.Second, Valid},
		{"expired", fresh, 301 * time.Second, Stale},
		{"other secret", foreign, 0, Invalid},
		{"tampered", string(tampered), 0, Invalid},
		{"garbage", "157590482938000", 0, Invalid},
		{"empty", "", 0, Invalid},
		{"from the future", fresh, -2 * time.Minute, Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss.now = func() time.Time { return now.Add(tc.after) }
			if got := iss.Check(tc.nonce); got != tc.want {
				t.Errorf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheck_SharedSecretVerifiesAcrossInstances(t *testing.T) {
	a, b := New("cluster", time.Minute, 10), New("cluster", time.Minute, 10)
	if got := b.Check(a.Issue()); got != Valid {
		t.Errorf("instance b verdict on a's nonce = %v, want Valid", got)
	}
}

func TestClaim_EachCountOnce(t *testing.T) {
	iss := New("", time.Minute, 10)
	n := iss.Issue()
	ctx := context.Background()
	steps := []struct {
		nc      string
		wantErr bool
	}{
		{"00000001", false},
		{"00000001", true}, // claimed, whatever the verdict of its request
		{"00000003", false},
		{"00000002", true}, // lower than one claimed
		{"zz", true},
		{"00000000", true},
		{"00000004", false},
	}
	for i, s := range steps {
		err := iss.Claim(ctx, n, s.nc)
		if (err != nil) != s.wantErr {
			t.Errorf("step %d: Claim(%s) err = %v, want error %v", i, s.nc, err, s.wantErr)
		}
		if err != nil && !errors.Is(err, ErrReplay) {
			t.Errorf("step %d: err = %v, want ErrReplay", i, err)
		}
	}
	if err := iss.Claim(ctx, "not-a-nonce", "00000001"); !errors.Is(err, ErrReplay) {
		t.Errorf("unreadable nonce: err = %v, want ErrReplay", err)
	}
}

func TestClaim_ConcurrentCopiesExactlyOneWins(t *testing.T) {
	iss := New("", time.Minute, 0)
	n := iss.Issue()
	const copies = 64
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if iss.Claim(context.Background(), n, "00000001") == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("%d of %d concurrent claims won, want exactly 1", got, copies)
	}
}

// fakeShared is a SetNX store shared by several issuers (a Redis stand-in).
type fakeShared struct {
	mu   sync.Mutex
	keys map[string]time.Duration
	err  error
}

func (f *fakeShared) SetNX(_ context.Context, key, _ string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if _, ok := f.keys[key]; ok {
		return false, nil
	}
	f.keys[key] = ttl
	return true, nil
}

// sharedPair is two instances sharing the secret and the claim store.
func sharedPair() (*fakeShared, *Issuer, *Issuer) {
	shared := &fakeShared{keys: map[string]time.Duration{}}
	a, b := New("cluster", time.Minute, 10), New("cluster", time.Minute, 10)
	a.Share(shared, "default:")
	b.Share(shared, "default:")
	return shared, a, b
}

func TestClaim_SharedAcrossInstances(t *testing.T) {
	shared, a, b := sharedPair()
	ctx := context.Background()
	n := a.Issue()
	if err := a.Claim(ctx, n, "00000001"); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, n, "00000001"); !errors.Is(err, ErrReplay) {
		t.Errorf("copy on another instance: err = %v, want ErrReplay", err)
	}
	if err := b.Claim(ctx, n, "00000002"); err != nil {
		t.Errorf("next count on another instance: %v", err)
	}
	if len(shared.keys) != 2 {
		t.Fatalf("shared keys = %v, want 2", shared.keys)
	}
	for k, ttl := range shared.keys {
		if !strings.HasPrefix(k, "default:nonce:") || ttl != time.Minute+maxSkew {
			t.Errorf("shared key %q ttl %v, want default:nonce:* with the nonce lifetime", k, ttl)
		}
	}
	shared.err = errors.New("down")
	if err := a.Claim(ctx, a.Issue(), "00000001"); !errors.Is(err, ErrShared) {
		t.Errorf("store down: err = %v, want ErrShared", err)
	}
}

func TestClaim_NoQOPNonceUsableOnce(t *testing.T) {
	iss := New("", time.Minute, 10)
	n := iss.Issue()
	if err := iss.Claim(context.Background(), n, ""); err != nil {
		t.Fatal(err)
	}
	if err := iss.Claim(context.Background(), n, ""); err == nil {
		t.Error("second use of a no-qop nonce accepted")
	}
}

func TestCount_MemoryBounded(t *testing.T) {
	iss := New("", time.Minute, 100)
	for i := 0; i < 1000; i++ {
		claim(iss, iss.Issue(), "00000001")
	}
	if n := iss.Tracked(); n > 100 {
		t.Errorf("tracked %d nonces, limit 100", n)
	}
}

func TestIssue_OpaqueToken(t *testing.T) {
	n := New("", time.Minute, 1).Issue()
	if strings.ContainsAny(n, `", =`) || len(n) < 32 {
		t.Errorf("nonce %q not a safe quoted-string token", n)
	}
}

func TestCount_OldestForgottenFirst(t *testing.T) {
	now := time.Unix(1000, 0)
	iss := New("", 4*time.Minute, 50)
	iss.now = func() time.Time { return now }
	first := iss.Issue()
	claim(iss, first, "00000001")
	var last string
	for i := 0; i < 60; i++ {
		now = now.Add(time.Second)
		last = iss.Issue()
		claim(iss, last, "00000001")
	}
	if err := claim(iss, last, "00000001"); err == nil {
		t.Error("the newest nonce was forgotten")
	}
	if err := claim(iss, first, "00000001"); err != nil {
		t.Error("the oldest nonce survived a full table")
	}
	if n := iss.Tracked(); n > 51 {
		t.Errorf("tracked %d, limit 50", n)
	}
}

func TestCount_KeptForTheWholeTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	iss := New("", 4*time.Minute, 0)
	iss.now = func() time.Time { return now }
	n := iss.Issue()
	claim(iss, n, "00000002")
	for i := 0; i < 24; i++ { // 4 min in 10 s steps, with traffic rotating generations
		now = now.Add(10 * time.Second)
		claim(iss, iss.Issue(), "00000001")
	}
	if err := claim(iss, n, "00000002"); err == nil {
		t.Error("replay accepted within the TTL")
	}
}

func claim(iss *Issuer, nonce, nc string) error { return iss.Claim(context.Background(), nonce, nc) }

// ClaimLocal + a caller's own SET NX is Claim: the local claim is made at
// once (a second ClaimLocal is a replay), the key is the one Claim would
// set, and ClaimShared refuses a key another instance took.
func TestClaimLocal_SplitClaim(t *testing.T) {
	_, a, b := sharedPair()
	ctx := context.Background()
	n := a.Issue()
	key, err := a.ClaimLocal(n, "00000001")
	if err != nil || !strings.HasPrefix(key, "default:nonce:") {
		t.Fatalf("ClaimLocal = %q, %v", key, err)
	}
	if _, err := a.ClaimLocal(n, "00000001"); !errors.Is(err, ErrReplay) {
		t.Errorf("second local claim: err = %v, want ErrReplay", err)
	}
	if a.SharedTTL() != time.Minute+maxSkew {
		t.Errorf("SharedTTL = %v", a.SharedTTL())
	}
	if err := a.ClaimShared(ctx, key); err != nil {
		t.Fatal(err)
	}
	// b claims the same count through Claim: the key is the same.
	if err := b.Claim(ctx, n, "00000001"); !errors.Is(err, ErrReplay) {
		t.Errorf("copy on another instance after a split claim: err = %v, want ErrReplay", err)
	}
	if err := a.ClaimShared(ctx, key); !errors.Is(err, ErrReplay) {
		t.Errorf("key claimed twice: err = %v, want ErrReplay", err)
	}
	// Per process: no key to claim cluster-wide.
	solo := New("", time.Minute, 10)
	if key, err := solo.ClaimLocal(solo.Issue(), "00000001"); key != "" || err != nil {
		t.Errorf("per-process ClaimLocal = %q, %v; want no key", key, err)
	}
}
