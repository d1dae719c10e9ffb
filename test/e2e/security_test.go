package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecurity covers the hardening of issue 8 with sipp: replayed
// credentials, stale nonces, user/AoR mismatch, brute-force bans and
// scanners.
func TestSecurity(t *testing.T) {
	rdb := redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15100"
	env["NONCE_TTL"] = "2"
	env["AUTH_FAILURE_LIMIT"] = "10"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15100"
	ctx := context.Background()

	t.Run("replayed credentials are challenged and never reach the webhook", func(t *testing.T) {
		dir := t.TempDir()
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv",
			Target: target, LocalIP: "127.0.0.21", LocalPort: 15101, Dir: dir})
		authz := sentAuthorization(t, dir)
		hook.Reset()
		// The captured header, verbatim, in a new call from another source.
		msg := register("udp", 15107, map[string]string{
			"Authorization": authz,
			"Contact":       "<sip:attacker@127.0.0.1:15107>",
		})
		answer := exchange(t, "udp", target, 15107, msg)
		if !strings.HasPrefix(answer, "SIP/2.0 401") || !strings.Contains(answer, "Nonce count reused") {
			t.Errorf("replay answer = %q, want 401 Nonce count reused", answer)
		}
		if n := hook.Count(); n != 0 {
			t.Errorf("webhook calls = %d, want 0 (the replay must not reach it)", n)
		}
		b, _, _ := readBinding(t, rdb, "john@jambonz.org")
		if strings.Contains(b.Contact, "attacker") {
			t.Errorf("replay rebound the AoR: %s", b.Contact)
		}
	})

	t.Run("stale nonce gets stale=true", func(t *testing.T) {
		sidecar.Run(t, sidecar.Sipp{Scenario: testdata(t, "uac-register-stale.xml"), CSV: "good_user.csv",
			Target: target, LocalIP: "127.0.0.22", LocalPort: 15102})
	})

	t.Run("authenticated user must match the AoR", func(t *testing.T) {
		hook.Reset()
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-failure-expect-403.xml", CSV: testdata(t, "mismatch.csv"),
			Target: target, LocalIP: "127.0.0.23", LocalPort: 15103})
		if !strings.Contains(proc.Logs(), "authenticated user does not match the AoR") {
			t.Error("mismatch not logged")
		}
	})

	t.Run("brute force from one IP is banned, others still register", func(t *testing.T) {
		// 10 wrong passwords: each answered 403 Invalid credentials.
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-failure-expect-403.xml", CSV: "bad_password.csv",
			Target: target, LocalIP: "127.0.0.24", LocalPort: 15104, Calls: 10, Rate: 20})
		ttl, err := rdb.TTL(ctx, "default:ban:ip:127.0.0.24").Result()
		if err != nil || ttl <= 0 || ttl > 600*time.Second {
			t.Fatalf("ban key TTL = %v (%v), want (0, 600s]", ttl, err)
		}
		// From then on even good credentials from that IP are refused at once.
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-unknown-realm.xml", CSV: "good_user.csv",
			Target: target, LocalIP: "127.0.0.24", LocalPort: 15104})
		// Another source registers fine.
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user2.csv",
			Target: target, LocalIP: "127.0.0.25", LocalPort: 15105})
	})

	t.Run("scanner user agents are refused", func(t *testing.T) {
		msg := register("udp", 15106, map[string]string{"User-Agent": "friendly-scanner"})
		if answer := exchange(t, "udp", target, 15106, msg); !strings.HasPrefix(answer, "SIP/2.0 403") {
			t.Errorf("scanner answer = %q, want 403", firstLine(answer))
		}
	})

	t.Run("secrets never logged", func(t *testing.T) {
		logs := proc.Logs()
		for _, secret := range []string{"5678", "8765", "response=", "Zm9vOmJhcg"} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain %q", secret)
			}
		}
	})
}

// sentAuthorization returns the Authorization header sipp sent, from its
// message trace in dir.
func sentAuthorization(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_messages.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "Authorization: "); ok {
				return v
			}
		}
	}
	t.Fatalf("no Authorization in sipp traces in %s", dir)
	return ""
}
