package nonce

import (
	"strings"
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

func TestCount_ReplayRefusedOnlyAfterAccept(t *testing.T) {
	iss := New("", time.Minute, 10)
	n := iss.Issue()
	steps := []struct {
		op, nc  string
		wantErr bool
	}{
		{"check", "00000001", false},
		{"check", "00000001", false}, // not accepted yet: a bad guess must not lock the owner out
		{"accept", "00000001", false},
		{"check", "00000001", true},
		{"check", "00000002", false},
		{"accept", "00000003", false},
		{"check", "00000002", true},
		{"check", "zz", true},
		{"check", "00000000", true},
	}
	for i, s := range steps {
		switch s.op {
		case "accept":
			iss.Accept(n, s.nc)
		case "check":
			if err := iss.CheckCount(n, s.nc); (err != nil) != s.wantErr {
				t.Errorf("step %d: CheckCount(%s) err = %v, want error %v", i, s.nc, err, s.wantErr)
			}
		}
	}
}

func TestCount_NoQOPNonceUsableOnce(t *testing.T) {
	iss := New("", time.Minute, 10)
	n := iss.Issue()
	if err := iss.CheckCount(n, ""); err != nil {
		t.Fatal(err)
	}
	iss.Accept(n, "")
	if err := iss.CheckCount(n, ""); err == nil {
		t.Error("second use of a no-qop nonce accepted")
	}
}

func TestCount_MemoryBounded(t *testing.T) {
	iss := New("", time.Minute, 100)
	for i := 0; i < 1000; i++ {
		iss.Accept(iss.Issue(), "00000001")
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
	iss.Accept(first, "00000001")
	var last string
	for i := 0; i < 60; i++ {
		now = now.Add(time.Second)
		last = iss.Issue()
		iss.Accept(last, "00000001")
	}
	if err := iss.CheckCount(last, "00000001"); err == nil {
		t.Error("the newest nonce was forgotten")
	}
	if err := iss.CheckCount(first, "00000001"); err != nil {
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
	iss.Accept(n, "00000002")
	for i := 0; i < 24; i++ { // 4 min in 10 s steps, with traffic rotating generations
		now = now.Add(10 * time.Second)
		iss.Accept(iss.Issue(), "00000001")
	}
	if err := iss.CheckCount(n, "00000002"); err == nil {
		t.Error("replay accepted within the TTL")
	}
}
