package regbot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func response(t *testing.T, raw string) *sip.Response {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Response)
}

func TestGrantedExpires_ContactParamThenHeaderWithFloor(t *testing.T) {
	const head = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\n"
	tests := []struct {
		name, headers string
		want          int
	}{
		{"contact expires wins", "Contact: <sip:a@1.2.3.4>;expires=600\r\nExpires: 900\r\n", 600},
		{"expires header", "Expires: 900\r\n", 900},
		{"nothing: default", "", 3600},
		{"below minimum: floor", "Contact: <sip:a@1.2.3.4>;expires=10\r\n", 30},
		{"garbage: default", "Expires: soon\r\n", 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := response(t, head+tt.headers+"Content-Length: 0\r\n\r\n")
			if got := grantedExpires(res, 3600, 30); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNextHop_ProxyThenIPWithPortThenBareName(t *testing.T) {
	tests := []struct {
		name string
		t    Target
		want string
	}{
		{"outbound proxy uri", Target{Host: "1.2.3.4", Port: 5060, OutboundProxy: "sip:10.0.0.1:5070;lr"}, "10.0.0.1:5070"},
		{"outbound proxy host", Target{Host: "1.2.3.4", Port: 5060, OutboundProxy: "proxy.example.com"}, "proxy.example.com"},
		{"ip literal", Target{Host: "1.2.3.4", Port: 5080}, "1.2.3.4:5080"},
		{"name: bare for SRV", Target{Host: "sip.carrier.com", Port: 5060}, "sip.carrier.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextHop(tt.t); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeyOf_RealmDefaultsToHost(t *testing.T) {
	a := keyOf(Target{Host: "h", Username: "u", Password: "p"})
	b := keyOf(Target{Host: "h", Realm: "h", Username: "u", Password: "p", GatewaySID: "other"})
	if a != b {
		t.Fatalf("%v != %v", a, b)
	}
}

// leaderStore is a KV the test can read back.
type leaderStore interface {
	KV
	Get(ctx context.Context, key string) (string, bool, error)
	TTL(ctx context.Context, key string) (time.Duration, error)
	Del(ctx context.Context, keys ...string) (int, error)
}

func TestLeader_RenewAndReleaseOnlyWithOwnToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) leaderStore
	}{
		{"redis", func(t *testing.T) leaderStore {
			return redisstore.NewKV(testenv.RueidisClient(t, testenv.Redis(t)))
		}},
		{"embedded", func(t *testing.T) leaderStore {
			s, err := memstore.Open(memstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := tc.open(t)
			ctx := context.Background()
			a := NewLeader(kv, "leader-unit", time.Minute)
			b := NewLeader(kv, "leader-unit", time.Minute)
			_, _ = kv.Del(ctx, a.Key())
			t.Cleanup(func() { _, _ = kv.Del(ctx, a.Key()) })

			if ok, err := a.Claim(ctx); !ok || err != nil {
				t.Fatalf("a.Claim = %v, %v", ok, err)
			}
			if ok, _ := b.Claim(ctx); ok {
				t.Fatal("b claimed a held token")
			}
			if ok, _ := b.Renew(ctx); ok {
				t.Fatal("b renewed a's token")
			}
			if err := b.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := kv.Get(ctx, a.Key()); v != a.Token() {
				t.Fatalf("b's release removed a's token: %q", v)
			}
			if ttl, _ := kv.TTL(ctx, a.Key()); ttl <= 0 || ttl > time.Minute {
				t.Fatalf("claim TTL %s", ttl)
			}
			if ok, _ := a.Renew(ctx); !ok {
				t.Fatal("a could not renew")
			}
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if ok, _ := b.Claim(ctx); !ok {
				t.Fatal("b could not claim a released token")
			}
		})
	}
}

func TestNewAgent_DecryptsStoredPassword(t *testing.T) {
	cipher, err := credcrypt.New("secret", false)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := cipher.Encrypt("bar")
	if err != nil {
		t.Fatal(err)
	}
	r := New(Deps{Cipher: cipher}, Options{})
	tests := []struct{ stored, want string }{{enc, "bar"}, {"plain", "plain"}}
	for _, tt := range tests {
		a, err := newAgent(r, Target{Host: "1.2.3.4", Username: "foo", Password: tt.stored}, "")
		if err != nil {
			t.Fatal(err)
		}
		if a.password != tt.want {
			t.Errorf("password %q, want %q", a.password, tt.want)
		}
	}
	if _, err := newAgent(r, Target{Host: "1.2.3.4", Username: "foo", Password: `{"iv":"00","content":"zz"}`}, ""); err == nil {
		t.Error("undecryptable password accepted")
	}
}

func TestNewAgent_RejectsBadAddresses(t *testing.T) {
	r := New(Deps{}, Options{})
	for _, tgt := range []Target{
		{Host: "1.2.3.4", Username: "foo", Password: "p", FromDomain: "bad domain"},
		{Host: "", Username: "foo", Password: "p"},
		{Host: "1.2.3.4", Username: "a b", Password: "p"},
	} {
		if _, err := newAgent(r, tgt, ""); err == nil {
			t.Errorf("accepted %+v", tgt)
		}
	}
}

func TestGroupTargets_OneAoRPerFailoverGroup(t *testing.T) {
	gw := func(carrier, sid, host, realm, proto string) Target {
		return Target{CarrierSID: carrier, GatewaySID: sid, Host: host, Realm: realm, Protocol: proto, Username: "u", Password: "p"}
	}
	groups := groupTargets([]Target{
		gw("c1", "g1", "10.0.0.1", "carrier.example", "udp"),
		gw("c2", "g3", "10.0.0.3", "", "udp"),
		gw("c1", "g2", "10.0.0.2", "carrier.example", "udp"),
		gw("c2", "g4", "10.0.0.4", "", "udp"),
		gw("c1", "g5", "10.0.0.5", "carrier.example", "tcp"),
	})
	var got [][]string
	for _, g := range groups {
		var sids []string
		for _, t := range g {
			sids = append(sids, t.GatewaySID)
		}
		got = append(got, sids)
	}
	// Same realm, credentials and transport: one group in directory order;
	// no realm (each gateway its own registrar) or another transport: apart.
	want := [][]string{{"g1", "g2"}, {"g3"}, {"g4"}, {"g5"}}
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for i := range want {
		if strings.Join(got[i], ",") != strings.Join(want[i], ",") {
			t.Fatalf("groups %v, want %v", got, want)
		}
	}
	if k := keyOfGroup(groups[0]); k.host != "10.0.0.1:0,10.0.0.2:0" {
		t.Errorf("group key host %q", k.host)
	}
	if k := keyOfGroup(groups[1]); k != keyOf(groups[1][0]) {
		t.Errorf("single-gateway key %v differs from keyOf", k)
	}
}
