package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"
)

func TestSafeHeaders_ScalarsKeptObjectsDropped(t *testing.T) {
	got := safeHeaders(map[string]any{
		"X-Count": float64(3), "X-Flag": true, "X-Text": "ok",
		"X-Obj": map[string]any{"a": 1}, "X-Null": nil, "X-Bad": "a\r\nVia: x",
	})
	want := map[string]string{"X-Count": "3", "X-Flag": "true", "X-Text": "ok"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// Signing states are reused per secret (macCache): signatures interleaved
// across secrets, repeated, and past the table's bound match a fresh HMAC.
func TestSign_ReusedStatesMatchFreshHMAC(t *testing.T) {
	at := time.Unix(1700000000, 0)
	fresh := func(secret string, body []byte) string {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("1700000000."))
		mac.Write(body)
		return "t=1700000000,v1=" + hex.EncodeToString(mac.Sum(nil))
	}
	for round := range 3 {
		for i := range maxMACSecrets + 10 {
			secret := "secret-" + strconv.Itoa(i%(maxMACSecrets+7))
			body := []byte(`{"n":` + strconv.Itoa(i*round) + `}`)
			if got, want := Sign(secret, at, body), fresh(secret, body); got != want {
				t.Fatalf("round %d, %s: %s, want %s", round, secret, got, want)
			}
		}
	}
}
