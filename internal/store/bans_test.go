package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
)

// In process, bans and failure counts live in bounded memstores: they
// expire, and a store full of live keys keeps what it has (under a flood
// of sources).
func TestBans_InProcessExpireAndBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	open := func() *memstore.Store {
		kv, err := memstore.Open(memstore.Options{MaxKeys: 2, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	b := store.NewBans(open(), open(), "c")
	ctx := context.Background()
	for _, key := range []string{"a", "b", "c"} {
		if err := b.Ban(ctx, key, time.Second); err != nil {
			t.Fatalf("Ban %s: %v", key, err)
		}
	}
	if banned, _ := b.Banned(ctx, "c"); banned {
		t.Error("ban stored beyond the limit")
	}
	if banned, _ := b.Banned(ctx, "a"); !banned {
		t.Error("ban not stored")
	}
	now = now.Add(2 * time.Second)
	if banned, _ := b.Banned(ctx, "a"); banned {
		t.Error("ban did not expire")
	}
	for want := 1; want <= 2; want++ {
		if n, err := b.Failure(ctx, "x", time.Second); n != want || err != nil {
			t.Errorf("failure %d = %d, %v", want, n, err)
		}
	}
	now = now.Add(2 * time.Second)
	if n, _ := b.Failure(ctx, "x", time.Second); n != 1 {
		t.Errorf("failure after window = %d, want 1", n)
	}
	_, _ = b.Failure(ctx, "y", time.Minute) // full: x's and y's windows
	if n, err := b.Failure(ctx, "z", time.Second); n != 1 || err != nil {
		t.Errorf("failure when full = %d, %v; want 1, nil", n, err)
	}
	if n, _ := b.Failure(ctx, "z", time.Second); n != 1 {
		t.Errorf("second failure when full = %d, want 1 (not counted)", n)
	}
	if n, _ := b.Failure(ctx, "y", time.Minute); n != 2 {
		t.Errorf("failure of a live window when full = %d, want 2", n)
	}
	if err := b.Ban(ctx, "y", time.Minute); err != nil {
		t.Fatal(err)
	}
	if banned, _ := b.Banned(ctx, "y"); !banned {
		t.Error("failure counts crowded a ban out")
	}
}
