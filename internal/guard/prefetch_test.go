package guard

import (
	"context"
	"testing"
	"time"
)

// keyed is a mapBans whose bans are keys of a shared store.
type keyed struct{ *mapBans }

func (keyed) BanKey(key string) string { return "c:ban:" + key }

// countingBans counts the guard's own ban reads.
type countingBans struct {
	keyed
	reads int
}

func (c *countingBans) Banned(ctx context.Context, key string) (bool, error) {
	c.reads++
	return c.keyed.Banned(ctx, key)
}

func TestAoRBanKey_OfferedOnlyWhenAdmitAoRWouldRead(t *testing.T) {
	on := Config{FailuresAoR: 3, Window: time.Minute}
	if _, ok := New(on, newBans(), quiet()).AoRBanKey("a@x"); ok {
		t.Fatal("key offered for bans that are not keys")
	}
	if _, ok := New(Config{}, keyed{newBans()}, quiet()).AoRBanKey("a@x"); ok {
		t.Fatal("key offered with AoR bans off")
	}
	g := New(on, keyed{newBans()}, quiet())
	key, ok := g.AoRBanKey("a@x")
	if !ok || key != "c:ban:aor:a@x" {
		t.Fatalf("AoRBanKey = %q, %v", key, ok)
	}
	g.AoRBanRead("a@x", false)
	if _, ok := g.AoRBanKey("a@x"); ok {
		t.Fatal("key offered again right after a 'not banned' answer")
	}
}

func TestAoRBanRead_NotBannedSparesTheRead(t *testing.T) {
	b := &countingBans{keyed: keyed{newBans()}}
	g := New(Config{FailuresAoR: 3, Window: time.Minute}, b, quiet())
	g.AoRBanRead("a@x", false)
	if !g.AdmitAoR(context.Background(), "a@x") {
		t.Fatal("not admitted")
	}
	if b.reads != 0 {
		t.Fatalf("%d ban reads after the answer was handed over, want 0", b.reads)
	}
}

func TestAoRBanRead_BannedIsReadAgain(t *testing.T) {
	b := &countingBans{keyed: keyed{newBans()}}
	ctx := context.Background()
	g := New(Config{FailuresAoR: 3, Window: time.Minute}, b, quiet())
	if err := b.Ban(ctx, "aor:a@x", time.Minute); err != nil {
		t.Fatal(err)
	}
	g.AoRBanRead("a@x", true)
	if g.AdmitAoR(ctx, "a@x") {
		t.Fatal("banned AoR admitted")
	}
	if b.reads != 1 {
		t.Fatalf("%d ban reads, want 1 (a ban is never taken from the hand-over alone)", b.reads)
	}
}
