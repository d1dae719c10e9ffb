package registrar_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// keyedBans is a guard.Bans whose bans are keys (as store.Bans): it
// records which keys the guard read itself.
type keyedBans struct {
	mu     sync.Mutex
	banned map[string]bool
	reads  []string
}

func (b *keyedBans) BanKey(key string) string { return "ban:" + key }

func (b *keyedBans) Banned(_ context.Context, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, key)
	return b.banned[b.BanKey(key)], nil
}

func (b *keyedBans) Ban(_ context.Context, key string, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.banned[b.BanKey(key)] = true
	return nil
}

func (b *keyedBans) Failure(context.Context, string, time.Duration) (int, error) { return 1, nil }

func (b *keyedBans) aorReads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, k := range b.reads {
		if strings.HasPrefix(k, "aor:") {
			n++
		}
	}
	return n
}

// combinedStore is a memStore that also reads a ban key in its lookup (as
// redisstore's pipelined GET and EXISTS).
type combinedStore struct {
	*memStore
	bans     *keyedBans
	combined []string // keys read with a binding
}

func (s *combinedStore) BindingAndExists(ctx context.Context, aor, key string) (*registrar.Binding, bool, error) {
	s.combined = append(s.combined, key)
	b, err := s.Binding(ctx, aor)
	s.bans.mu.Lock()
	defer s.bans.mu.Unlock()
	return b, s.bans.banned[key], err
}

func combinedEnv(t *testing.T) (*env, *combinedStore, *keyedBans) {
	t.Helper()
	e := newEnv()
	bans := &keyedBans{banned: map[string]bool{}}
	cs := &combinedStore{memStore: e.store, bans: bans}
	g := guard.New(guard.Config{FailuresPerIP: 100, FailuresAoR: 5, Window: time.Minute}, bans, quietLog())
	e.reg = registrar.New(registrar.Deps{
		Guard: g, Store: cs, Directory: e.dir, Webhook: e.webhook, Clients: e.clients,
		Alerter: e.alerts, Log: quietLog(), Now: e.now(),
	})
	return e, cs, bans
}

// The authenticated REGISTER reads its AoR's ban with the binding, and the
// guard does not read it again; the unauthenticated one reads no ban.
func TestRegister_AoRBanReadWithBinding(t *testing.T) {
	e, cs, bans := combinedEnv(t)
	res := e.authorized(t)
	expect(t, res, 200, nil)
	if len(cs.combined) != 1 || cs.combined[0] != "ban:aor:john@jambonz.org" {
		t.Fatalf("combined lookups %v, want one of ban:aor:john@jambonz.org (by the authenticated REGISTER)", cs.combined)
	}
	if n := bans.aorReads(); n != 0 {
		t.Fatalf("guard read the AoR ban itself %d times, want 0", n)
	}
	if cs.lookups != 2 {
		t.Fatalf("%d binding lookups for two REGISTERs, want 2", cs.lookups)
	}
}

// A ban read with the binding refuses as the guard's own read does.
func TestRegister_AoRBanReadWithBindingRefuses(t *testing.T) {
	e, cs, bans := combinedEnv(t)
	bans.banned["ban:aor:john@jambonz.org"] = true
	res := e.authorized(t)
	expect(t, res, 403, map[string]string{"X-Reason": "Too many failed authentications"})
	if len(cs.combined) != 1 {
		t.Fatalf("combined lookups %v, want 1", cs.combined)
	}
	if e.authCalls() != 0 {
		t.Fatalf("%d authenticator calls for a banned AoR", e.authCalls())
	}
	if e.store.binds != 0 {
		t.Fatal("banned AoR bound")
	}
}
