package e2e

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// The attacks of issue 13 against the built binary with real Redis,
// MariaDB and webhook (docs/security.md, "Attacks tested").

// phone is a raw UDP SIP client at ip:port.
type phone struct {
	ip   string
	port int
}

// regMsg is a REGISTER from p for user@domain with the given Call-ID, CSeq,
// Contact user and expires; extra headers are appended.
func (p phone) regMsg(user, domain, callID string, cseq int, contactUser, expires string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", domain)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d;rport\r\n", p.ip, p.port, time.Now().UnixNano())
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%d\r\n", user, domain, p.port)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", user, domain)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s:%d>\r\n", contactUser, p.ip, p.port)
	fmt.Fprintf(&b, "Expires: %s\r\n", expires)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// send sends msg to target and returns the head (status line and headers)
// of the first final answer, "" when none came within 5 s.
func (p phone) send(t *testing.T, target, msg string) string {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(p.ip), Port: p.port}, mustUDP(target))
	if err != nil {
		t.Error(err)
		return ""
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Error(err)
		return ""
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		head, _, _ := strings.Cut(string(buf[:n]), "\r\n\r\n")
		if !strings.HasPrefix(head, "SIP/2.0 1") {
			return head + "\r\n"
		}
	}
}

var (
	nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)
	realmRE = regexp.MustCompile(`realm="([^"]+)"`)
)

// challenge sends an unauthenticated REGISTER for user@domain and returns
// the challenge's nonce and realm. Its Contact is never a bound one, so it
// is not answered from cache.
func (p phone) challenge(t *testing.T, target, user, domain string) (nonce, realm string) {
	t.Helper()
	head := p.send(t, target, p.regMsg(user, domain, fmt.Sprintf("ch-%d-%d", p.port, time.Now().UnixNano()), 1, "probe", "3600"))
	n, r := nonceRE.FindStringSubmatch(head), realmRE.FindStringSubmatch(head)
	if !strings.HasPrefix(head, "SIP/2.0 401") || n == nil || r == nil {
		t.Fatalf("challenge answer = %q, want a 401 with nonce and realm", head)
	}
	return n[1], r[1]
}

// authorization is the Authorization header for user in realm with
// password over nonce (qop auth, nc 1, MD5), as a phone computes it.
func authorization(t *testing.T, user, realm, password, nonce, uri string) string {
	t.Helper()
	const nc, cnonce = "00000001", "0a4f113b"
	resp, err := authserver.DigestResponse("MD5", user, realm, password, "REGISTER", uri, nonce, nc, cnonce, "auth")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`Authorization: Digest username="%s",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=MD5,qop=auth,nc=%s,cnonce="%s"`,
		user, realm, nonce, uri, resp, nc, cnonce)
}

// headerValues returns the values of the header named by any of names
// (full and compact forms, case-insensitive) in a SIP message head.
func headerValues(head string, names ...string) []string {
	var out []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(strings.TrimSpace(name), n) {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}

// Issue 13 item 2: copies of one Authorization sent while the original is
// at a slow webhook, to the same instance and to another one sharing
// NONCE_SECRET, from other sources with other Call-IDs and Contacts.
func TestAttack_ReplayRaceWhileAtWebhook(t *testing.T) {
	rdb := redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	start := func(listen string) {
		env := sidecar.BaseEnv(t)
		env["SIP_LISTEN"] = "udp:" + listen
		env["NONCE_SECRET"] = "e2e-shared-nonce-secret"
		env["NONCE_TTL"] = "120"
		sidecar.Start(t, env, "native front listening")
	}
	const a, b = "127.0.0.1:15200", "127.0.0.1:15210"
	start(a)
	start(b)
	ctx := context.Background()

	legit := phone{"127.0.0.1", 15201}
	nonce, realm := legit.challenge(t, a, "john", "jambonz.org")
	authz := authorization(t, "john", realm, "1234", nonce, "sip:jambonz.org")
	hook.SetDelay(time.Second)
	legitAnswer := make(chan string, 1)
	go func() {
		legitAnswer <- legit.send(t, a, legit.regMsg("john", "jambonz.org", "legit-call", 2, "john", "3600", authz))
	}()
	waitFor(t, "the legitimate REGISTER at the webhook", func() bool { return hook.Count() == 1 })

	// The attacker's copies: 3 to the same instance, 3 to the other.
	answers := make([]string, 6)
	var wg sync.WaitGroup
	for i := range answers {
		target := a
		if i >= 3 {
			target = b
		}
		attacker := phone{fmt.Sprintf("127.0.0.%d", 60+i), 15220 + i}
		msg := attacker.regMsg("john", "jambonz.org", fmt.Sprintf("attack-%d", i), 2, "attacker", "3600", authz)
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = attacker.send(t, target, msg)
		}()
	}
	wg.Wait()
	got := <-legitAnswer
	hook.SetDelay(0)

	if !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("legitimate REGISTER answered %q, want 200", firstLine(got))
	}
	for i, ans := range answers {
		if !strings.HasPrefix(ans, "SIP/2.0 401") || !strings.Contains(ans, "Nonce count reused") {
			t.Errorf("copy %d answered %q, want 401 Nonce count reused", i, firstLine(ans))
		}
	}
	if n := hook.Count(); n != 1 {
		t.Errorf("webhook calls = %d, want 1 (copies must not reach it)", n)
	}
	bnd, _, _ := readBinding(t, rdb, "john@jambonz.org")
	if bnd.Contact != "sip:john@127.0.0.1:15201" {
		t.Errorf("stored contact = %q, want the legitimate sip:john@127.0.0.1:15201", bnd.Contact)
	}
	// The cluster-wide claim: one key, owned by the cluster, living one
	// nonce lifetime (plus the clock-skew allowance).
	keys, err := rdb.Keys(ctx, "default:nonce:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("claim keys = %v (%v), want one default:nonce:* key", keys, err)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > 180*time.Second {
		t.Errorf("claim key TTL = %v, want (0, NONCE_TTL+60s]", ttl)
	}
}

// Issue 13 item 3: john's jambonz.org credentials must not register
// john@victim.org, whose account uses the same (service provider) webhook;
// nor those of a subdomain or of a case variant of the realm.
func TestAttack_CredentialsOfAnotherRealm(t *testing.T) {
	rdb := redisClient(t)
	db := testenv.RootDB(t, testenv.MySQL(t))
	ctx := context.Background()
	const victimSID = "e2e00000-0000-4000-8000-0000000000a1"
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DELETE FROM accounts WHERE account_sid = ?`, victimSID)
	t.Cleanup(func() { _, _ = db.ExecContext(ctx, `DELETE FROM accounts WHERE account_sid = ?`, victimSID) })
	// Same service provider and registration hook as jambonz.org's account.
	exec(`INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, registration_hook_sid, webhook_secret)
		VALUES (?, '3f35518f-5a0d-4c2e-90a5-2407bb3b36f0', 'victim', 'victim.org', '90dda62e-0ea2-47d1-8164-5bd49003476c', 'foobar')`, victimSID)

	opts := webhookOptions()
	// The webhook would accept john/1234 in every realm the attacker names.
	for _, realm := range []string{"evil.jambonz.org", "JAMBONZ.ORG", "Jambonz.Org"} {
		opts.Users[realm] = map[string]authserver.User{"john": {Password: "1234"}}
	}
	opts.Users["victim.org"] = map[string]authserver.User{"john": {Password: "victim-pw"}}
	hook := sidecar.Webhook(t, opts)
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15230"
	env["AUTH_FAILURE_LIMIT"] = "100"
	env["AUTH_FAILURE_AOR_LIMIT"] = "100"
	sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15230"

	attacker := phone{"127.0.0.70", 15231}
	for i, realm := range []string{"jambonz.org", "evil.jambonz.org", "JAMBONZ.ORG", "Jambonz.Org", "VICTIM.ORG"} {
		t.Run(realm, func(t *testing.T) {
			hook.Reset()
			nonce, challenged := attacker.challenge(t, target, "john", "victim.org")
			if challenged != "victim.org" {
				t.Fatalf("challenged realm %q, want the To host victim.org", challenged)
			}
			authz := authorization(t, "john", realm, "1234", nonce, "sip:victim.org")
			head := attacker.send(t, target, attacker.regMsg("john", "victim.org", fmt.Sprintf("xrealm-%d", i), 2, "attacker", "3600", authz))
			if !strings.HasPrefix(head, "SIP/2.0 403") {
				t.Errorf("answer %q, want 403", firstLine(head))
			}
			if n := hook.Count(); n != 0 {
				t.Errorf("webhook called %d times, want 0", n)
			}
			if n := rdb.Exists(ctx, "user:john@victim.org").Val(); n != 0 {
				t.Fatal("user:john@victim.org was created")
			}
		})
	}

	t.Run("the victim's own credentials register and the webhook gets the challenged realm", func(t *testing.T) {
		hook.Reset()
		owner := phone{"127.0.0.71", 15232}
		nonce, realm := owner.challenge(t, target, "john", "victim.org")
		authz := authorization(t, "john", realm, "victim-pw", nonce, "sip:victim.org")
		if head := owner.send(t, target, owner.regMsg("john", "victim.org", "owner", 2, "john", "3600", authz)); !strings.HasPrefix(head, "SIP/2.0 200") {
			t.Fatalf("owner answered %q, want 200", firstLine(head))
		}
		if reqs := hook.Requests(); len(reqs) != 1 || reqs[0].Fields.Realm != "victim.org" {
			t.Fatalf("webhook requests %d, want 1 with realm victim.org", len(reqs))
		}
		// Every key written has a TTL: the realm index too.
		for _, key := range []string{"user:john@victim.org", "active-user-realm:victim.org"} {
			if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > 3600*time.Second {
				t.Errorf("%s TTL = %v, want (0, 3600s]", key, ttl)
			}
		}
	})
}

// Issue 13 item 5: a webhook refusal carrying compact and full names of
// framing and routing headers; only allow-listed ones reach the answer.
func TestAttack_WebhookHeadersFiltered(t *testing.T) {
	redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15240"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15240"
	hook.SetBody(`{"status":"fail","msg":"hook says no","headers":{` +
		`"l":"999","v":"SIP/2.0/UDP 6.6.6.6:5060;branch=z9hG4bKevil","i":"evil-call-id","f":"<sip:evil@evil>;tag=e",` +
		`"t":"<sip:evil@evil>;tag=e","m":"<sip:evil@6.6.6.6>","L":"999","Content-Length":"999","VIA":"SIP/2.0/TCP 6.6.6.6",` +
		`"Record-Route":"<sip:6.6.6.6;lr>","Contact":"<sip:evil@6.6.6.6>","X-Hook":"kept","Warning":"399 hook \"no\""}}`)

	p := phone{"127.0.0.1", 15241}
	nonce, realm := p.challenge(t, target, "john", "jambonz.org")
	head := p.send(t, target, p.regMsg("john", "jambonz.org", "hdr-call", 2, "john", "3600",
		authorization(t, "john", realm, "1234", nonce, "sip:jambonz.org")))
	if !strings.HasPrefix(head, "SIP/2.0 403") {
		t.Fatalf("answer %q, want 403", firstLine(head))
	}
	for _, names := range [][]string{{"Via", "v"}, {"Content-Length", "l"}, {"Call-ID", "i"}, {"From", "f"}, {"To", "t"}} {
		if v := headerValues(head, names...); len(v) != 1 || strings.Contains(v[0], "evil") || strings.Contains(v[0], "6.6.6.6") || v[0] == "999" {
			t.Errorf("%s in the answer = %q, want exactly our own", names[0], v)
		}
	}
	for _, name := range []string{"Record-Route", "Contact", "m"} {
		if v := headerValues(head, name); len(v) != 0 {
			t.Errorf("%s = %q, want none", name, v)
		}
	}
	if v := headerValues(head, "X-Hook"); len(v) != 1 || v[0] != "kept" {
		t.Errorf("X-Hook = %q, want the allowed header kept", v)
	}
	if v := headerValues(head, "Warning"); len(v) != 1 {
		t.Errorf("Warning = %q, want the allowed header kept", v)
	}
	// The webhook's msg does not replace the log event's message.
	waitFor(t, "the refusal logged with its event message and webhook_msg", func() bool {
		for _, line := range strings.Split(proc.Logs(), "\n") {
			if strings.Contains(line, `"msg":"register: authentication refused"`) && strings.Contains(line, `"webhook_msg":"hook says no"`) {
				return true
			}
		}
		return false
	})
}

// The "also fix" list of issue 13: expires capped, webhook failures mapped
// and counted towards bans.
func TestAttack_ExpiresAndWebhookFailures(t *testing.T) {
	rdb := redisClient(t)
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:15250"
	env["WEBHOOK_TIMEOUT_MS"] = "200"
	env["AUTH_FAILURE_LIMIT"] = "3"
	env["REGISTER_MIN_EXPIRES"] = "60"
	sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15250"
	ctx := context.Background()

	register := func(t *testing.T, p phone, expires string) string {
		t.Helper()
		nonce, realm := p.challenge(t, target, "john", "jambonz.org")
		return p.send(t, target, p.regMsg("john", "jambonz.org", fmt.Sprintf("c-%d-%d", p.port, time.Now().UnixNano()), 2, "john", expires,
			authorization(t, "john", realm, "1234", nonce, "sip:jambonz.org")))
	}

	t.Run("Expires 2^63 with a webhook naming none is capped at REGISTER_MAX_EXPIRES", func(t *testing.T) {
		hook.SetBody(`{"status":"ok"}`)
		defer hook.Reset()
		if head := register(t, phone{"127.0.0.80", 15251}, "9223372036854775807"); !strings.HasPrefix(head, "SIP/2.0 200") {
			t.Fatalf("answer %q, want 200", firstLine(head))
		}
		b, _, ttl := readBinding(t, rdb, "john@jambonz.org")
		if ttl <= 0 || ttl > 3600*time.Second || b.ExpiryTime > time.Now().Add(3601*time.Second).UnixMilli() {
			t.Errorf("binding TTL %v expiry %d, want at most 3600 s", ttl, b.ExpiryTime)
		}
	})

	for i, tc := range []struct {
		http int
		want string
	}{{401, "SIP/2.0 403"}, {404, "SIP/2.0 403"}, {600, "SIP/2.0 503"}, {500, "SIP/2.0 503"}} {
		t.Run(fmt.Sprintf("webhook HTTP %d", tc.http), func(t *testing.T) {
			hook.SetStatus(tc.http)
			defer hook.Reset()
			head := register(t, phone{fmt.Sprintf("127.0.0.%d", 81+i), 15252}, "3600")
			if !strings.HasPrefix(head, tc.want) {
				t.Fatalf("answer %q, want %s", firstLine(head), tc.want)
			}
			if strings.HasPrefix(tc.want, "SIP/2.0 503") && len(headerValues(head, "Retry-After")) != 1 {
				t.Errorf("503 without Retry-After: %q", head)
			}
			if len(headerValues(head, "WWW-Authenticate")) != 0 {
				t.Errorf("refusal carries a challenge: %q", head)
			}
		})
	}

	t.Run("below REGISTER_MIN_EXPIRES: 423 with Min-Expires", func(t *testing.T) {
		p := phone{"127.0.0.86", 15255}
		head := p.send(t, target, p.regMsg("john", "jambonz.org", "brief", 1, "john", "59"))
		if !strings.HasPrefix(head, "SIP/2.0 423") || strings.Join(headerValues(head, "Min-Expires"), ",") != "60" {
			t.Errorf("answer %q, want 423 with Min-Expires: 60", head)
		}
	})

	t.Run("a REGISTER of the binding's Call-ID without a higher CSeq changes nothing (RFC 3261 10.3)", func(t *testing.T) {
		p := phone{"127.0.0.87", 15256}
		send := func(cseq int, contactUser string) string {
			nonce, realm := p.challenge(t, target, "john", "jambonz.org")
			return p.send(t, target, p.regMsg("john", "jambonz.org", "ordered-call", cseq, contactUser, "3600",
				authorization(t, "john", realm, "1234", nonce, "sip:jambonz.org")))
		}
		if head := send(5, "john"); !strings.HasPrefix(head, "SIP/2.0 200") {
			t.Fatalf("first REGISTER answered %q", firstLine(head))
		}
		for _, cseq := range []int{5, 4} {
			if head := send(cseq, "late"); !strings.HasPrefix(head, "SIP/2.0 500") {
				t.Errorf("CSeq %d answered %q, want 500", cseq, firstLine(head))
			}
		}
		_, fields, _ := readBinding(t, rdb, "john@jambonz.org")
		if fields["contact"] != "sip:john@127.0.0.87:15256" || fields["callId"] != "ordered-call" || fields["cseq"] != float64(5) {
			t.Errorf("binding = %v, want the CSeq 5 one", fields)
		}
		if head := send(6, "next"); !strings.HasPrefix(head, "SIP/2.0 200") {
			t.Errorf("CSeq 6 answered %q, want 200", firstLine(head))
		}
	})

	t.Run("a flood against a slow webhook gets banned", func(t *testing.T) {
		hook.SetDelay(2 * time.Second) // beyond WEBHOOK_TIMEOUT_MS
		defer hook.Reset()
		flood := phone{"127.0.0.90", 15253}
		for i := range 3 {
			if head := register(t, flood, "3600"); !strings.HasPrefix(head, "SIP/2.0 503") {
				t.Fatalf("attempt %d answered %q, want 503 (webhook timed out)", i, firstLine(head))
			}
		}
		if n := rdb.Exists(ctx, "default:ban:ip:127.0.0.90").Val(); n != 1 {
			t.Fatal("source not banned after AUTH_FAILURE_LIMIT webhook timeouts")
		}
		calls := hook.Count()
		head := flood.send(t, target, flood.regMsg("john", "jambonz.org", "after-ban", 1, "john", "3600"))
		if !strings.HasPrefix(head, "SIP/2.0 403") || hook.Count() != calls {
			t.Errorf("banned source answered %q with %d more webhook calls, want 403 and none", firstLine(head), hook.Count()-calls)
		}
		// The AoR is not locked: its owner elsewhere still registers.
		hook.SetDelay(0)
		if head := register(t, phone{"127.0.0.91", 15254}, "3600"); !strings.HasPrefix(head, "SIP/2.0 200") {
			t.Errorf("owner from another source answered %q, want 200", firstLine(head))
		}
	})
}
