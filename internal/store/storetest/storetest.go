// Package storetest is the contract test suite every registration store
// must pass (Redis and embedded), so that the implementations cannot drift.
// Each implementation's test file calls Run with a constructor.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// Store is the interface under test.
type Store = store.Registrations

// KeyTTL reads a key's remaining lifetime (-1 without expiry, -2 absent).
type KeyTTL interface {
	TTL(ctx context.Context, key string) (time.Duration, error)
}

// RawKV reads and writes a key's value as the store holds it.
type RawKV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Set(ctx context.Context, key, value string, ttl time.Duration) error
}

// Open returns an empty store for one test.
type Open func(t *testing.T) Store

func binding(contact string, expiry time.Time) registrar.Binding {
	return registrar.Binding{
		Contact:                contact,
		SBCAddress:             "udp/127.0.0.1:5060,tcp/127.0.0.1:5060",
		PrivateSBCAddress:      "10.0.0.1:5060",
		Protocol:               "udp",
		Proxy:                  "sip:127.0.0.1:5090",
		CallHook:               "http://127.0.0.1/call",
		CallStatusHook:         "http://127.0.0.1/status",
		AllowDirectUserCalling: true,
		ExpiryTime:             expiry.UnixMilli(),
	}
}

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	hour := time.Hour
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s Store)
	}{
		{"AbsentBindingIsNil", func(t *testing.T, s Store) {
			b, err := s.Binding(ctx, "nobody@example.com")
			if err != nil || b != nil {
				t.Fatalf("Binding = %+v, %v; want nil, nil", b, err)
			}
		}},
		{"BindThenReadBack", func(t *testing.T, s Store) {
			want := binding("sip:alice@192.0.2.1:5060", time.Now().Add(hour))
			mustBind(t, s, "alice@example.com", want, hour)
			got, err := s.Binding(ctx, "alice@example.com")
			if err != nil || got == nil || *got != want {
				t.Fatalf("Binding = %+v, %v; want %+v", got, err, want)
			}
		}},
		{"BindReplacesTheBindingOfTheAoR", func(t *testing.T, s Store) {
			mustBind(t, s, "alice@example.com", binding("sip:old@192.0.2.1", time.Now().Add(hour)), hour)
			mustBind(t, s, "alice@example.com", binding("sip:new@192.0.2.2", time.Now().Add(hour)), hour)
			got, err := s.Binding(ctx, "alice@example.com")
			if err != nil || got == nil || got.Contact != "sip:new@192.0.2.2" {
				t.Fatalf("Binding = %+v, %v; want the new contact", got, err)
			}
			wantCount(t, s, "example.com", 1)
		}},
		{"UnbindRemovesBindingAndMembership", func(t *testing.T, s Store) {
			mustBind(t, s, "alice@example.com", binding("sip:a@192.0.2.1", time.Now().Add(hour)), hour)
			if err := s.Unbind(ctx, "alice@example.com"); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Binding(ctx, "alice@example.com"); err != nil || b != nil {
				t.Fatalf("Binding after Unbind = %+v, %v", b, err)
			}
			wantCount(t, s, "example.com", 0)
			if n, err := s.Count(ctx); err != nil || n != 0 {
				t.Fatalf("Count = %d, %v; want 0", n, err)
			}
		}},
		{"UnbindOfAnAbsentAoRIsNoError", func(t *testing.T, s Store) {
			if err := s.Unbind(ctx, "nobody@example.com"); err != nil {
				t.Fatal(err)
			}
		}},
		{"BindingVanishesAfterItsTTL", func(t *testing.T, s Store) {
			ttl := 300 * time.Millisecond
			mustBind(t, s, "brief@example.com", binding("sip:b@192.0.2.1", time.Now().Add(ttl)), ttl)
			// Poll instead of sleeping a fixed time: only the outcome is asserted.
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, err := s.Binding(ctx, "brief@example.com")
				if err != nil {
					t.Fatal(err)
				}
				if b == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("binding still present long after its TTL")
				}
				time.Sleep(50 * time.Millisecond)
			}
			wantCount(t, s, "example.com", 0)
		}},
		{"CountRealmPrunesMembersWhoseExpiryPassed", func(t *testing.T, s Store) {
			// The key itself still lives (long TTL) but its score is in the past:
			// the sorted set, not the key, decides, as in the original.
			mustBind(t, s, "stale@example.com", binding("sip:s@192.0.2.1", time.Now().Add(-time.Second)), hour)
			mustBind(t, s, "live@example.com", binding("sip:l@192.0.2.2", time.Now().Add(hour)), hour)
			wantCount(t, s, "example.com", 1)
			if n, err := s.Count(ctx); err != nil || n != 1 {
				t.Fatalf("Count = %d, %v; want 1", n, err)
			}
		}},
		{"CountRealmIsPerRealmAndCaseInsensitive", func(t *testing.T, s Store) {
			for i := 0; i < 3; i++ {
				mustBind(t, s, fmt.Sprintf("u%d@example.com", i), binding("sip:x@192.0.2.1", time.Now().Add(hour)), hour)
			}
			mustBind(t, s, "u@ample.com", binding("sip:y@192.0.2.1", time.Now().Add(hour)), hour)
			mustBind(t, s, "u@sub.example.com", binding("sip:z@192.0.2.1", time.Now().Add(hour)), hour)
			wantCount(t, s, "example.com", 3)
			wantCount(t, s, "EXAMPLE.com", 3)
			wantCount(t, s, "ample.com", 1)
			wantCount(t, s, "other.org", 0)
			if n, err := s.Count(ctx); err != nil || n != 5 {
				t.Fatalf("Count = %d, %v; want 5", n, err)
			}
		}},
		{"ListReturnsLiveBindingsOfAllOrOneRealm", func(t *testing.T, s Store) {
			a := binding("sip:a@192.0.2.1", time.Now().Add(hour))
			b := binding("sip:b@192.0.2.2", time.Now().Add(hour))
			mustBind(t, s, "a@example.com", a, hour)
			mustBind(t, s, "b@other.org", b, hour)
			mustBind(t, s, "stale@example.com", binding("sip:s@192.0.2.3", time.Now().Add(-time.Second)), hour)

			all, err := s.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 2 || all["a@example.com"] != a || all["b@other.org"] != b {
				t.Fatalf("List(all) = %+v", all)
			}
			one, err := s.List(ctx, "example.com")
			if err != nil {
				t.Fatal(err)
			}
			if len(one) != 1 || one["a@example.com"] != a {
				t.Fatalf("List(example.com) = %+v", one)
			}
			none, err := s.List(ctx, "nowhere.net")
			if err != nil || len(none) != 0 {
				t.Fatalf("List(nowhere.net) = %+v, %v", none, err)
			}
		}},
		{"RealmIndexExpiresWithItsLongestBinding", func(t *testing.T, s Store) {
			kt, ok := s.(KeyTTL)
			if !ok {
				t.Fatalf("%T does not offer TTL: the suite cannot check that every key expires", s)
			}
			mustBind(t, s, "alice@example.com", binding("sip:a@192.0.2.1", time.Now().Add(hour)), hour)
			mustBind(t, s, "bob@example.com", binding("sip:b@192.0.2.2", time.Now().Add(2*hour)), 2*hour)
			// A shorter re-registration does not shorten the index's life.
			mustBind(t, s, "alice@example.com", binding("sip:a@192.0.2.1", time.Now().Add(time.Minute)), time.Minute)
			ttl, err := kt.TTL(ctx, "active-user-realm:example.com")
			if err != nil {
				t.Fatal(err)
			}
			if ttl < 2*hour-time.Minute || ttl > 2*hour {
				t.Fatalf("realm index TTL = %v, want the longest binding's (2h)", ttl)
			}
		}},
		{"StoredJSONIsEncodingJSONs", func(t *testing.T, s Store) {
			// The value is read by the rest of the cluster (docs/contract.md):
			// exactly what json.Marshal writes, escaping included.
			kv := rawKV(t, s)
			b := binding(`sip:a&b@192.0.2.1;x="<1>"`, time.Now().Add(hour))
			b.SBCAddress, b.CallID, b.CSeq = "udp/[2001:db8::1]:5060,Zoë\u2028", "c\"id\"@h", 7
			mustBind(t, s, "alice@example.com", b, hour)
			want, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			raw, ok, err := kv.Get(ctx, store.UserKey("alice@example.com"))
			if err != nil || !ok || raw != string(want) {
				t.Fatalf("stored %q, %v, %v\nwant   %q", raw, ok, err, want)
			}
		}},
		{"ReadsBindingsAsEncodingJSONDoes", func(t *testing.T, s Store) {
			// Written by another writer of the cluster (the original: no HTML
			// escaping, its own member order), with members unknown here.
			kv := rawKV(t, s)
			raw := `{"sbcAddress":"udp/203.0.113.10:5060","contact":"sip:n@192.0.2.9:5060;ob","protocol":"udp",` +
				`"proxy":"sip:192.0.2.9:5060","callHook":"https://h.example/c?a=<1>&b=2","extra":{"x":[1,null]},` +
				`"allow_direct_app_calling":true,"allow_direct_queue_calling":false,"allow_direct_user_calling":false,"expiryTime":1796000000123}`
			if err := kv.Set(ctx, store.UserKey("node@example.com"), raw, hour); err != nil {
				t.Fatal(err)
			}
			var want registrar.Binding
			if err := json.Unmarshal([]byte(raw), &want); err != nil {
				t.Fatal(err)
			}
			got, err := s.Binding(ctx, "node@example.com")
			if err != nil || got == nil || *got != want {
				t.Fatalf("Binding = %+v, %v; want %+v", got, err, want)
			}
			// What encoding/json refuses is an error, in its words.
			if err := kv.Set(ctx, store.UserKey("bad@example.com"), `{"contact":1}`, hour); err != nil {
				t.Fatal(err)
			}
			wantErr := json.Unmarshal([]byte(`{"contact":1}`), &want)
			if b, err := s.Binding(ctx, "bad@example.com"); err == nil || !strings.Contains(err.Error(), wantErr.Error()) {
				t.Fatalf("Binding of invalid JSON = %+v, %v; want an error with %q", b, err, wantErr)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open(t)) })
	}
}

func rawKV(t *testing.T, s Store) RawKV {
	t.Helper()
	kv, ok := s.(RawKV)
	if !ok {
		t.Fatalf("%T does not offer Get and Set: the suite cannot check the stored JSON", s)
	}
	return kv
}

func mustBind(t *testing.T, s Store, aor string, b registrar.Binding, ttl time.Duration) {
	t.Helper()
	if err := s.Bind(context.Background(), aor, b, ttl); err != nil {
		t.Fatalf("Bind %s: %v", aor, err)
	}
}

func wantCount(t *testing.T, s Store, realm string, want int) {
	t.Helper()
	n, err := s.CountRealm(context.Background(), realm)
	if err != nil || n != want {
		t.Fatalf("CountRealm(%s) = %d, %v; want %d", realm, n, err, want)
	}
}
