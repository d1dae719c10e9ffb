package memstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := memstore.Open(memstore.Options{Path: filepath.Join(t.TempDir(), "state")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, path string, c *clock) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(memstore.Options{Path: path, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPersistence_BindingsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state")
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := open(t, path, c)
	keep := registrar.Binding{Contact: "sip:keep@192.0.2.1", Protocol: "udp", ExpiryTime: c.t.Add(time.Hour).UnixMilli()}
	if err := s.Bind(ctx, "keep@example.com", keep, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(ctx, "short@example.com", registrar.Binding{ExpiryTime: c.t.Add(time.Minute).UnixMilli()}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart two minutes later: the short binding expired while down.
	c.t = c.t.Add(2 * time.Minute)
	s2 := open(t, path, c)
	got, err := s2.Binding(ctx, "keep@example.com")
	if err != nil || got == nil || *got != keep {
		t.Fatalf("after restart Binding = %+v, %v; want %+v", got, err, keep)
	}
	if b, _ := s2.Binding(ctx, "short@example.com"); b != nil {
		t.Fatalf("expired binding survived the restart: %+v", b)
	}
	if n, err := s2.CountRealm(ctx, "example.com"); err != nil || n != 1 {
		t.Fatalf("CountRealm after restart = %d, %v; want 1", n, err)
	}
	list, err := s2.List(ctx, "example.com")
	if err != nil || len(list) != 1 {
		t.Fatalf("List after restart = %v, %v", list, err)
	}
}

func TestPersistence_MissingFileStartsEmpty(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "absent"), &clock{t: time.Now()})
	if n, err := s.Count(context.Background()); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v", n, err)
	}
}

func TestPersistence_CorruptFileIsAnErrorNamingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := memstore.Open(memstore.Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want an error naming %s", err, path)
	}
}

func TestPersistence_SaveReplacesAtomicallyAndOnlyWhenChanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	s := open(t, path, &clock{t: time.Now()})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unchanged store wrote its file: %v", err)
	}
	if err := s.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "state" {
		t.Fatalf("directory holds %v, want only the state file (no temporary left)", entries)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestRun_SavesPeriodicallyAndStopsWithItsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := memstore.Open(memstore.Options{Path: path, SaveEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	if err := s.Set(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("state file never written by Run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestPrimitives_RedisSemantics(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := open(t, filepath.Join(t.TempDir(), "state"), c)

	// SET NX with expiry in one step (the regbot token).
	if ok, _ := s.SetNX(ctx, "default:regbot-token", "a", 70*time.Second); !ok {
		t.Fatal("SetNX on an absent key did not store")
	}
	if ok, _ := s.SetNX(ctx, "default:regbot-token", "b", 70*time.Second); ok {
		t.Fatal("SetNX on a present key stored")
	}
	if ttl, _ := s.TTL(ctx, "default:regbot-token"); ttl != 70*time.Second {
		t.Fatalf("TTL = %v, want 70s", ttl)
	}
	c.t = c.t.Add(71 * time.Second)
	if ok, _ := s.SetNX(ctx, "default:regbot-token", "b", 70*time.Second); !ok {
		t.Fatal("SetNX after expiry did not store")
	}
	if v, ok, _ := s.Get(ctx, "default:regbot-token"); !ok || v != "b" {
		t.Fatalf("Get = %q, %v", v, ok)
	}

	// A TTL'd string (a gateway blacklist entry).
	_ = s.Set(ctx, "blacklist-sip-gateway:g1", "1", 300*time.Second)
	c.t = c.t.Add(301 * time.Second)
	if _, ok, _ := s.Get(ctx, "blacklist-sip-gateway:g1"); ok {
		t.Fatal("blacklist entry outlived its TTL")
	}
	if ttl, _ := s.TTL(ctx, "blacklist-sip-gateway:g1"); ttl != -2 {
		t.Fatalf("TTL of an absent key = %v, want -2", ttl)
	}

	// Sets (OPTIONS membership), in one atomic step.
	err := s.Update(func(tx *memstore.Tx) error {
		if n, _ := tx.SAdd("default:active-fs", "10.0.0.1:5060", "10.0.0.2:5060", "10.0.0.1:5060"); n != 2 {
			t.Errorf("SAdd added %d, want 2", n)
		}
		if n, _ := tx.SRem("default:active-fs", "10.0.0.1:5060", "absent"); n != 1 {
			t.Errorf("SRem removed %d, want 1", n)
		}
		if m, _ := tx.SMembers("default:active-fs"); len(m) != 1 || m[0] != "10.0.0.2:5060" {
			t.Errorf("SMembers = %v", m)
		}
		// Wrong kind, as Redis' WRONGTYPE.
		_ = tx.Set("plain", "v", 0)
		_, err := tx.SAdd("plain", "x")
		return err
	})
	if !errors.Is(err, memstore.ErrWrongType) {
		t.Fatalf("SAdd on a string = %v, want ErrWrongType", err)
	}

	// A hash with a key TTL (eph-gw-ip).
	_ = s.HSetTTL(ctx, "eph-gw-ip:192.0.2.9", map[string]string{"carrier": "123"}, 7200*time.Second)
	if h, _ := s.HGetAll(ctx, "eph-gw-ip:192.0.2.9"); h["carrier"] != "123" {
		t.Fatalf("HGetAll = %v", h)
	}
	if n, _ := s.IncrWithin(ctx, "default:authfail:ip:192.0.2.1", time.Minute); n != 1 {
		t.Fatalf("IncrWithin of a new counter = %d, want 1", n)
	}
	if n, _ := s.IncrWithin(ctx, "default:authfail:ip:192.0.2.1", time.Hour); n != 2 {
		t.Fatalf("IncrWithin = %d, want 2", n)
	}
	if ttl, _ := s.TTL(ctx, "default:authfail:ip:192.0.2.1"); ttl != time.Minute {
		t.Fatalf("TTL of a counter = %v, want the first window (1m)", ttl)
	}
	if n, _ := s.Del(ctx, "plain", "absent"); n != 1 {
		t.Fatalf("Del = %d, want 1", n)
	}
}

func TestMaxKeys_RefusesNewKeysWhenFullOfLiveOnes(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s, err := memstore.Open(memstore.Options{Now: c.now, MaxKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Set(ctx, "a", "1", time.Second)
	_ = s.Set(ctx, "b", "1", time.Minute)
	if err := s.Set(ctx, "c", "1", time.Second); !errors.Is(err, store.ErrFull) {
		t.Fatalf("third key = %v, want store.ErrFull", err)
	}
	if err := s.Set(ctx, "b", "2", time.Minute); err != nil {
		t.Fatalf("replacing a key when full: %v", err)
	}
	c.t = c.t.Add(2 * time.Second) // a expired: its room is free again
	if err := s.Set(ctx, "c", "1", time.Second); err != nil {
		t.Fatalf("new key after one expired: %v", err)
	}
}
