// Package e2e runs the original sbc-sip-sidecar sipp scenarios against the
// built binary with real Redis, MariaDB and a real registration webhook.
package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	return rdb
}

type binding struct {
	Contact                 string `json:"contact"`
	SBCAddress              string `json:"sbcAddress"`
	PrivateSBCAddress       string `json:"privateSbcAddress"`
	Protocol                string `json:"protocol"`
	Proxy                   string `json:"proxy"`
	CallHook                string `json:"callHook"`
	CallStatusHook          string `json:"callStatusHook"`
	AllowDirectAppCalling   *bool  `json:"allow_direct_app_calling"`
	AllowDirectQueueCalling *bool  `json:"allow_direct_queue_calling"`
	AllowDirectUserCalling  *bool  `json:"allow_direct_user_calling"`
	ExpiryTime              int64  `json:"expiryTime"`
}

// readBinding returns the binding of aor and its TTL, failing when absent.
func readBinding(t *testing.T, rdb *redis.Client, aor string) (binding, map[string]any, time.Duration) {
	t.Helper()
	ctx := context.Background()
	raw, err := rdb.Get(ctx, "user:"+aor).Bytes()
	if err != nil {
		t.Fatalf("GET user:%s: %v", aor, err)
	}
	var b binding
	var fields map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("user:%s JSON: %v (%s)", aor, err, raw)
	}
	_ = json.Unmarshal(raw, &fields)
	ttl, err := rdb.TTL(ctx, "user:"+aor).Result()
	if err != nil {
		t.Fatal(err)
	}
	return b, fields, ttl
}

// registerScenarios runs the REGISTER scenarios of testdata/sipp in the original's order from
// 127.0.0.1:sippPort to target and checks Redis and the webhook after each;
// johnBound runs the front's own checks once john is registered.
func registerScenarios(t *testing.T, rdb *redis.Client, hook *authserver.Server, target string, sippPort int,
	sippTransport string, want binding, johnBound func(b binding, fields map[string]any, call authserver.Recorded)) {
	t.Helper()
	run := func(scenario, csv string) {
		t.Helper()
		sidecar.Run(t, sidecar.Sipp{Scenario: scenario, CSV: csv, Target: target,
			LocalPort: sippPort, Transport: sippTransport})
	}
	ctx := context.Background()

	run("uac-register-unknown-realm.xml", "deactivated_account_user.csv")
	run("uac-reject-ipv4-realm.xml", "bad_realm.csv")
	run("uac-register-auth-failure-expect-403.xml", "bad_password.csv")
	if keys := registrationKeys(t, rdb); len(keys) != 0 {
		t.Fatalf("failed registrations wrote %v", keys)
	}

	run("uac-register-auth-success.xml", "good_user.csv")
	b, fields, ttl := readBinding(t, rdb, "john@jambonz.org")
	got := b
	got.ExpiryTime, got.AllowDirectAppCalling, got.AllowDirectQueueCalling, got.AllowDirectUserCalling = 0, nil, nil, nil
	if got != want {
		t.Errorf("binding = %+v, want %+v", got, want)
	}
	for _, f := range []string{"allow_direct_app_calling", "allow_direct_queue_calling", "allow_direct_user_calling"} {
		if v, ok := fields[f]; !ok || v != false {
			t.Errorf("field %s = %v, want false", f, v)
		}
	}
	// john is granted 300 s by the webhook although he asked 3600.
	if ttl <= 290*time.Second || ttl > 300*time.Second {
		t.Errorf("TTL = %v, want ~300s", ttl)
	}
	score, err := rdb.ZScore(ctx, "active-user", "user:john@jambonz.org").Result()
	if err != nil || int64(score) != b.ExpiryTime {
		t.Errorf("active-user score = %v (%v), want %d", score, err, b.ExpiryTime)
	}
	reqs := hook.Requests()
	if len(reqs) != 2 { // one 403 for jane, one 200 for john
		t.Fatalf("webhook calls = %d, want 2", len(reqs))
	}
	johnBound(b, fields, reqs[1])

	// Re-register from the same source: answered from cache, no webhook call.
	run("uac-re-register-auth-success.xml", "good_user.csv")
	if n := hook.Count(); n != 2 {
		t.Errorf("cached re-register called the webhook (%d calls)", n)
	}

	// jane is granted what she asks (20 s) as it is under her 45 s cap; twice.
	run("uac-register-auth-success-jane.xml", "good_user2.csv")
	run("uac-register-auth-success-jane.xml", "good_user2.csv")
	_, _, ttl = readBinding(t, rdb, "jane@jambonz.org")
	if ttl <= 15*time.Second || ttl > 20*time.Second {
		t.Errorf("jane TTL = %v, want ~20s", ttl)
	}
	if n := hook.Count(); n != 4 {
		t.Errorf("webhook calls after jane = %d, want 4", n)
	}

	run("uac-register-gh-83.xml", "good_user.csv")

	run("uac-unregister-auth-success.xml", "good_user.csv")
	if n, _ := rdb.Exists(ctx, "user:john@jambonz.org").Result(); n != 0 {
		t.Error("binding still present after un-register")
	}
	if _, err := rdb.ZScore(ctx, "active-user", "user:john@jambonz.org").Result(); err != redis.Nil {
		t.Errorf("active-user still holds john: %v", err)
	}
	members, _ := rdb.ZRange(ctx, "active-user", 0, -1).Result()
	if len(members) != 1 || members[0] != "user:jane@jambonz.org" {
		t.Errorf("active-user = %v, want [user:jane@jambonz.org]", members)
	}
}

func TestRegisterScenarios(t *testing.T) {
	for _, tc := range []struct {
		transport, sippTransport string
		sipPort, sippPort        int
	}{
		{"udp", "u1", 15060, 15090},
		{"tcp", "t1", 15062, 15092},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			rdb := redisClient(t)
			hook := sidecar.Webhook(t, webhookOptions())
			env := sidecar.BaseEnv(t)
			env["SIP_LISTEN"] = fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d", tc.sipPort, tc.sipPort)
			sidecar.Start(t, env, "native front listening")
			want := binding{
				Contact:        fmt.Sprintf("sip:sipp@127.0.0.1:%d", tc.sippPort),
				SBCAddress:     fmt.Sprintf("udp/127.0.0.1:%d,tcp/127.0.0.1:%d", tc.sipPort, tc.sipPort),
				Protocol:       tc.transport,
				Proxy:          fmt.Sprintf("sip:127.0.0.1:%d", tc.sippPort),
				CallHook:       "http://127.0.0.1/call",
				CallStatusHook: "http://127.0.0.1/call-status",
			}
			registerScenarios(t, rdb, hook, fmt.Sprintf("127.0.0.1:%d", tc.sipPort), tc.sippPort, tc.sippTransport, want,
				func(b binding, fields map[string]any, call authserver.Recorded) {
					if _, ok := fields["privateSbcAddress"]; ok {
						t.Errorf("privateSbcAddress present on loopback: %v", fields["privateSbcAddress"])
					}
					if d := time.Until(time.UnixMilli(b.ExpiryTime)); d < 290*time.Second || d > 301*time.Second {
						t.Errorf("expiryTime is %v away, want ~300s", d)
					}
					if !call.SignatureValid || !call.BasicOK {
						t.Errorf("webhook call: signature valid=%v basic auth ok=%v", call.SignatureValid, call.BasicOK)
					}
					if call.Fields.SourcePort != tc.sippPort || call.Fields.Expires != 3600 || call.Fields.Realm != "jambonz.org" {
						t.Errorf("webhook fields = %+v", call.Fields)
					}
				})
			// Listed by the runtime CLI from Redis (jane is still bound).
			out, code := sidecar.CLI(t, env, "registrations", "jambonz.org")
			if code != 0 || !strings.Contains(out, "jane@jambonz.org") || strings.Contains(out, "john@jambonz.org") {
				t.Errorf("cli registrations = %d:\n%s", code, out)
			}
		})
	}
}

// clientsAccount is an account without a registration hook and its client
// alice (password s3cr3t), as seedClientsAccount writes them.
type clientsAccount struct{ sid, name, realm, clientSID string }

// seedClientsAccount writes a's account and client rows (the password
// encrypted the way api-server stores it, with sidecar.BaseEnv's
// ENCRYPTION_SECRET) and removes them when the test ends.
func seedClientsAccount(t *testing.T, db *sql.DB, a clientsAccount) {
	t.Helper()
	ctx := context.Background()
	cipher, err := credcrypt.New("e2e-secret", false)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := cipher.Encrypt("s3cr3t")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cleanup := func() {
		exec(`DELETE FROM clients WHERE account_sid = ?`, a.sid)
		exec(`DELETE FROM accounts WHERE account_sid = ?`, a.sid)
	}
	cleanup()
	t.Cleanup(cleanup)
	exec(`INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, webhook_secret)
		VALUES (?, '3f35518f-5a0d-4c2e-90a5-2407bb3b36f0', ?, ?, 'secret')`, a.sid, a.name, a.realm)
	exec(`INSERT INTO clients (client_sid, account_sid, username, password, allow_direct_app_calling, allow_direct_queue_calling, allow_direct_user_calling)
		VALUES (?, ?, 'alice', ?, 1, 0, 1)`, a.clientSID, a.sid, sealed)
}

// TestRegisterClientsTable authenticates against the clients table: an
// account without a registration hook and a client whose password is stored
// encrypted the way api-server stores it.
func TestRegisterClientsTable(t *testing.T) {
	rdb := redisClient(t)
	my := testenv.MySQL(t)
	db := testenv.RootDB(t, my)
	const realm = "clients.jambonz.org"
	seedClientsAccount(t, db, clientsAccount{sid: "b0b0b0b0-0000-4000-8000-000000000001", name: "clients account",
		realm: realm, clientSID: "c1c1c1c1-0000-4000-8000-000000000001"})

	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15064"
	sidecar.Start(t, env, "native front listening")

	dir := t.TempDir()
	good := filepath.Join(dir, "alice.csv")
	bad := filepath.Join(dir, "alice-bad.csv")
	writeCSV(t, good, "alice", realm, "s3cr3t")
	writeCSV(t, bad, "alice", realm, "wrong")

	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-failure-expect-403.xml", CSV: bad,
		Target: "127.0.0.1:15064", LocalPort: 15094})
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: good,
		Target: "127.0.0.1:15064", LocalPort: 15094})

	b, _, ttl := readBinding(t, rdb, "alice@"+realm)
	if ttl <= 3590*time.Second {
		t.Errorf("TTL = %v, want ~3600s (no webhook to shorten it)", ttl)
	}
	if b.AllowDirectAppCalling == nil || !*b.AllowDirectAppCalling || *b.AllowDirectQueueCalling || !*b.AllowDirectUserCalling {
		t.Errorf("direct calling flags not taken from the clients row: %+v", b)
	}
	if b.CallHook != "" {
		t.Errorf("callHook = %q, want none", b.CallHook)
	}
}

func writeCSV(t *testing.T, path, user, domain, password string) {
	t.Helper()
	body := "SEQUENTIAL\n" + user + ";" + domain + ";[authentication username=" + user + " password=" + password + "]\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// webhookOptions is the customer side of the hook in testdata/jambonz-db/test-data.sql.
func webhookOptions() authserver.Options {
	opts := authserver.DefaultOptions()
	opts.WebhookSecret = "foobar" // accounts.webhook_secret in testdata/jambonz-db/test-data.sql
	return opts
}

// registrationKeys lists the binding keys and indexes in Redis (guard
// failure counters are allowed).
func registrationKeys(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"user:*", "active-user*"} {
		keys, err := rdb.Keys(context.Background(), pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, keys...)
	}
	return out
}
