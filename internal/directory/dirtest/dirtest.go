// Package dirtest is the contract test suite every registrar.Directory must
// pass (MySQL and the YAML file), so that the implementations cannot drift.
// Each implementation's test materialises Data() its own way (SQL rows, a
// YAML file) and calls Run.
package dirtest

import (
	"context"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Account is an accounts row with its capacities and hook's sid.
type Account struct {
	registrar.Account
	HookSID    string // webhook_sid of Account.Hook
	Capacities registrar.Capacities
}

// Client is a clients row.
type Client struct {
	ClientSID  string
	AccountSID string
	registrar.Client
}

// Fixture is the data every implementation is loaded with.
type Fixture struct {
	Accounts []Account
	Clients  []Client
}

// Sids and realms of the fixture; distinct from testdata/jambonz-db/test-data.sql.
const (
	HookedSID   = "d1d1d1d1-0000-4000-8000-000000000001"
	InactiveSID = "d1d1d1d1-0000-4000-8000-000000000002"
	ClientsSID  = "d1d1d1d1-0000-4000-8000-000000000003"
	SPSID       = "3f35518f-5a0d-4c2e-90a5-2407bb3b36f0" // the provider of testdata/jambonz-db/test-data.sql

	HookedRealm   = "dirtest.example.com"
	InactiveRealm = "inactive.dirtest.example.com"
	ClientsRealm  = "clients.dirtest.example.com"

	// EncryptedPassword has the shape of api-server's encrypted values; the
	// directory hands it over verbatim.
	EncryptedPassword = `{"iv":"00112233445566778899aabbccddeeff","content":"abcdef0123"}`
)

// Data returns the fixture.
func Data() Fixture {
	return Fixture{
		Accounts: []Account{
			{
				Account: registrar.Account{SID: HookedSID, ServiceProviderSID: SPSID, Realm: HookedRealm,
					Active: true, WebhookSecret: "s1", DeviceToCallRatio: 3,
					Hook: &registrar.Webhook{URL: "http://127.0.0.1:4999/auth", Method: "GET", Username: "u", Password: "p"}},
				HookSID:    "d1d1d1d1-0000-4000-8000-0000000000a1",
				Capacities: registrar.Capacities{VoiceCallSessions: 4, Devices: 2},
			},
			{
				Account: registrar.Account{SID: InactiveSID, ServiceProviderSID: SPSID, Realm: InactiveRealm,
					Active: false, WebhookSecret: "s2", DeviceToCallRatio: 5},
			},
			{
				Account: registrar.Account{SID: ClientsSID, ServiceProviderSID: SPSID, Realm: ClientsRealm,
					Active: true, WebhookSecret: "s3", DeviceToCallRatio: 5},
			},
		},
		Clients: []Client{
			{ClientSID: "d1d1d1d1-0000-4000-8000-0000000000c1", AccountSID: ClientsSID, Client: registrar.Client{
				Username: "alice", Password: "plain-secret", Active: true,
				AllowDirectAppCalling: true, AllowDirectQueueCalling: false, AllowDirectUserCalling: true}},
			{ClientSID: "d1d1d1d1-0000-4000-8000-0000000000c2", AccountSID: ClientsSID, Client: registrar.Client{
				Username: "bob", Password: EncryptedPassword, Active: true,
				AllowDirectAppCalling: true, AllowDirectQueueCalling: true, AllowDirectUserCalling: true}},
			{ClientSID: "d1d1d1d1-0000-4000-8000-0000000000c3", AccountSID: ClientsSID, Client: registrar.Client{
				Username: "carol", Password: "x", Active: false}},
		},
	}
}

// Open returns a directory loaded with fx.
type Open func(t *testing.T, fx Fixture) registrar.Directory

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	fx := Data()
	d := open(t, fx)
	account := func(t *testing.T, realm string) *registrar.Account {
		t.Helper()
		a, err := d.AccountByRealm(ctx, realm)
		if err != nil {
			t.Fatalf("AccountByRealm(%s): %v", realm, err)
		}
		return a
	}
	t.Run("AccountByRealmReturnsAccountAndHook", func(t *testing.T) {
		got := account(t, HookedRealm)
		want := fx.Accounts[0].Account
		if got == nil || got.Hook == nil {
			t.Fatalf("AccountByRealm = %+v, want %+v", got, want)
		}
		gotHook, wantHook := *got.Hook, *want.Hook
		got.Hook, want.Hook = nil, nil
		if *got != want || gotHook != wantHook {
			t.Fatalf("AccountByRealm = %+v %+v, want %+v %+v", *got, gotHook, want, wantHook)
		}
	})
	t.Run("AccountByRealmIgnoresCase", func(t *testing.T) {
		if a := account(t, "DirTest.Example.COM"); a == nil || a.SID != HookedSID {
			t.Fatalf("AccountByRealm = %+v", a)
		}
	})
	t.Run("AccountWithoutHookHasNilHook", func(t *testing.T) {
		if a := account(t, ClientsRealm); a == nil || a.Hook != nil || !a.Active {
			t.Fatalf("AccountByRealm = %+v", a)
		}
	})
	t.Run("InactiveAccountIsReturnedInactive", func(t *testing.T) {
		if a := account(t, InactiveRealm); a == nil || a.Active {
			t.Fatalf("AccountByRealm = %+v, want an inactive account", a)
		}
	})
	t.Run("UnknownRealmIsNil", func(t *testing.T) {
		// No parent-domain retry here: that is the registrar's job.
		if a := account(t, "nowhere.dirtest.example.com"); a != nil {
			t.Fatalf("AccountByRealm = %+v, want nil", a)
		}
	})
	t.Run("CapacitiesByCategory", func(t *testing.T) {
		for _, a := range fx.Accounts {
			got, err := d.Capacities(ctx, a.SID)
			if err != nil || got != a.Capacities {
				t.Errorf("Capacities(%s) = %+v, %v; want %+v", a.SID, got, err, a.Capacities)
			}
		}
		if got, err := d.Capacities(ctx, "no-such-account"); err != nil || got != (registrar.Capacities{}) {
			t.Errorf("Capacities(unknown) = %+v, %v; want zero", got, err)
		}
	})
	t.Run("ClientsAreReturnedAsStored", func(t *testing.T) {
		for _, c := range fx.Clients {
			got, err := d.Client(ctx, c.AccountSID, c.Username)
			if err != nil || got == nil || *got != c.Client {
				t.Errorf("Client(%s) = %+v, %v; want %+v", c.Username, got, err, c.Client)
			}
		}
	})
	t.Run("ClientUsernameIgnoresCase", func(t *testing.T) {
		if got, err := d.Client(ctx, ClientsSID, "ALICE"); err != nil || got == nil || got.Username != "alice" {
			t.Errorf("Client(ALICE) = %+v, %v", got, err)
		}
	})
	t.Run("ClientOfAnotherAccountOrUnknownIsNil", func(t *testing.T) {
		for _, q := range [][2]string{{HookedSID, "alice"}, {ClientsSID, "dave"}} {
			if got, err := d.Client(ctx, q[0], q[1]); err != nil || got != nil {
				t.Errorf("Client(%s, %s) = %+v, %v; want nil", q[0], q[1], got, err)
			}
		}
	})
}
