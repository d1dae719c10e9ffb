package mysqldir_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/dirtest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// Product sids of testdata/jambonz-db/test-data.sql.
const (
	voiceProduct  = "c4403cdb-8e75-4b27-9726-7d8315e3216d"
	deviceProduct = "2c815913-5c26-4004-b748-183b459329df"
)

func TestDirectoryContract(t *testing.T) {
	dirtest.Run(t, func(t *testing.T, fx dirtest.Fixture) registrar.Directory {
		env := testenv.MySQL(t)
		root := testenv.RootDB(t, env)
		insert(t, root, fx)
		db, err := mysqldir.Open(config.MySQL{Host: env.Host, Port: env.Port, User: env.User,
			Password: env.Password, Database: env.Database, ConnectionLimit: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		d, err := mysqldir.New(context.Background(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return d
	})
}

// insert writes fx as jambonz rows, removing them when the test ends.
func insert(t *testing.T, db *sql.DB, fx dirtest.Fixture) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cleanup := func() {
		for _, a := range fx.Accounts {
			exec(`DELETE FROM clients WHERE account_sid = ?`, a.SID)
			exec(`DELETE ap FROM account_products ap JOIN account_subscriptions s
				ON ap.account_subscription_sid = s.account_subscription_sid WHERE s.account_sid = ?`, a.SID)
			exec(`DELETE FROM account_subscriptions WHERE account_sid = ?`, a.SID)
			exec(`DELETE FROM accounts WHERE account_sid = ?`, a.SID)
			if a.HookSID != "" {
				exec(`DELETE FROM webhooks WHERE webhook_sid = ?`, a.HookSID)
			}
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	for i, a := range fx.Accounts {
		var hook any
		if a.Hook != nil {
			exec(`INSERT INTO webhooks (webhook_sid, url, method, username, password) VALUES (?, ?, ?, ?, ?)`,
				a.HookSID, a.Hook.URL, a.Hook.Method, a.Hook.Username, a.Hook.Password)
			hook = a.HookSID
		}
		exec(`INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, registration_hook_sid,
			webhook_secret, device_to_call_ratio, is_active) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.SID, a.ServiceProviderSID, "dirtest", a.Realm, hook, a.WebhookSecret, a.DeviceToCallRatio, a.Active)
		if a.Capacities == (registrar.Capacities{}) {
			continue
		}
		sub := a.SID[:35] + string(rune('a'+i))
		exec(`INSERT INTO account_subscriptions (account_subscription_sid, account_sid, pending) VALUES (?, ?, 0)`, sub, a.SID)
		exec(`INSERT INTO account_products (account_product_sid, account_subscription_sid, product_sid, quantity)
			VALUES (?, ?, ?, ?)`, sub[:34]+"v"+sub[35:], sub, voiceProduct, a.Capacities.VoiceCallSessions)
		exec(`INSERT INTO account_products (account_product_sid, account_subscription_sid, product_sid, quantity)
			VALUES (?, ?, ?, ?)`, sub[:34]+"d"+sub[35:], sub, deviceProduct, a.Capacities.Devices)
	}
	for _, c := range fx.Clients {
		exec(`INSERT INTO clients (client_sid, account_sid, username, password, is_active, allow_direct_app_calling,
			allow_direct_queue_calling, allow_direct_user_calling) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ClientSID, c.AccountSID, c.Username, c.Password, c.Active, c.AllowDirectAppCalling,
			c.AllowDirectQueueCalling, c.AllowDirectUserCalling)
	}
}
