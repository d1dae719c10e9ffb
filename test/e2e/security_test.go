package e2e

import (
	"context"
	"encoding/json"
	"fmt"
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

	t.Run("the default challenge is one MD5 WWW-Authenticate", func(t *testing.T) {
		answer := exchange(t, "udp", target, 15108, register("udp", 15108, nil))
		var got []string
		for _, line := range strings.Split(answer, "\r\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "WWW-Authenticate") {
				got = append(got, strings.TrimSpace(v))
			}
		}
		if !strings.HasPrefix(answer, "SIP/2.0 401") || len(got) != 1 ||
			!strings.HasPrefix(got[0], `Digest realm="jambonz.org", algorithm=MD5, qop="auth", nonce="`) {
			t.Fatalf("answer %q has challenges %q, want exactly one MD5 challenge", firstLine(answer), got)
		}
	})

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
		if !proc.WaitLog("authenticated user does not match the AoR") {
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
		for _, leak := range secretsIn(t, proc.Logs(), []string{"5678", "8765"}, []string{"response=", "Zm9vOmJhcg"}) {
			t.Error(leak)
		}
	})
}

// secretsIn returns where the log text carries a password or a credential
// fragment. It looks only in the values of each JSON log event, never in
// "time" (a timestamp's nanoseconds may hold any digits) nor "call_id"
// (sipp's Call-IDs carry its pid); a password counts only as a whole token
// (not inside a longer number such as a port).
func secretsIn(t *testing.T, logs string, passwords, fragments []string) []string {
	t.Helper()
	var leaks []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var event map[string]any
		if err := json.Unmarshal([]byte(line), &event); err != nil {
			// Not ours (e.g. a Go runtime message): look at the whole line.
			event = map[string]any{"line": line}
		}
		walkStrings("", event, func(key, v string) {
			if key == "time" || key == "call_id" {
				return
			}
			for _, f := range fragments {
				if strings.Contains(v, f) {
					leaks = append(leaks, fmt.Sprintf("log value %s=%q contains %q", key, v, f))
				}
			}
			for _, p := range passwords {
				if containsToken(v, p) {
					leaks = append(leaks, fmt.Sprintf("log value %s=%q contains the password %q", key, v, p))
				}
			}
		})
	}
	return leaks
}

func walkStrings(key string, v any, f func(key, v string)) {
	switch v := v.(type) {
	case string:
		f(key, v)
	case map[string]any:
		for k, x := range v {
			f(k, k) // a key may carry data too
			walkStrings(k, x, f)
		}
	case []any:
		for _, x := range v {
			walkStrings(key, x, f)
		}
	}
}

// containsToken reports whether tok occurs in s not adjacent to another
// letter or digit.
func containsToken(s, tok string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(tok)
		if (j == 0 || !isAlnum(s[j-1])) && (end == len(s) || !isAlnum(s[end])) {
			return true
		}
		i = j + 1
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
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

// The check itself: timestamps and longer numbers are not leaks; a password
// as a value or inside a text is.
func TestSecretsIn(t *testing.T) {
	logs := `{"time":"2026-11-25T13:55:33.129087651Z","level":"INFO","msg":"ok","source":"127.0.0.1:18765"}
{"time":"x","call_id":"1-8765@127.0.0.1","msg":"register"}
{"time":"x","msg":"webhook","body":{"password":"5678"}}
{"time":"x","msg":"Authorization: Digest response=\"abc\""}
`
	got := secretsIn(t, logs, []string{"5678", "8765"}, []string{"response="})
	if len(got) != 2 || !strings.Contains(got[0], `"5678"`) || !strings.Contains(got[1], "response=") {
		t.Fatalf("leaks = %q, want the password in body and response=", got)
	}
}
