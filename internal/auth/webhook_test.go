package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// seen is what the test hook server received.
type seen struct {
	method string
	path   string
	query  map[string][]string
	header http.Header
	body   []byte
}

// hookServer starts a hook that records requests and answers with answer.
// redirectTarget is where a hook redirects to: it would grant anything, and
// tells whether it was asked.
func redirectTarget(t *testing.T) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var asked atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Store(true)
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(target.Close)
	return target, &asked
}

func hookServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []seen) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{method: r.Method, path: r.URL.Path, query: r.URL.Query(), header: r.Header.Clone(), body: b})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func jsonAnswer(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func newWebhook(timeout time.Duration, ua string) (*Webhook, *recordingAlerter) {
	al := &recordingAlerter{}
	return NewWebhook(timeout, ua, al, discardLog()), al
}

func TestWebhook_PostBodyFields(t *testing.T) {
	srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
	w, _ := newWebhook(2*time.Second, "")
	g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL + "/auth", Method: "POST"}, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if !g.OK || g.Status != 200 {
		t.Fatalf("grant = %+v", g)
	}
	reqs := requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.path != "/auth" {
		t.Fatalf("request %s %s", r.method, r.path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	creds := sippCreds("john", "1234")
	want := map[string]any{
		"method":         "REGISTER",
		"expires":        float64(3600), // a JSON number
		"scheme":         "digest",
		"username":       "john",
		"realm":          "jambonz.org",
		"nonce":          "abc",
		"uri":            "sip:127.0.0.1:5060",
		"response":       creds.Response,
		"algorithm":      "MD5",
		"qop":            "auth",
		"nc":             "00000001",
		"cnonce":         "6b8b4567",
		"source_address": "127.0.0.1",
		"source_port":    float64(5090), // a JSON number
		"headers": map[string]any{
			"via":     "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1",
			"to":      "<sip:john@jambonz.org>",
			"contact": "<sip:john@127.0.0.1:5090>",
		},
	}
	for k, v := range want {
		if !reflect.DeepEqual(body[k], v) {
			t.Errorf("body[%q] = %#v (%T), want %#v (%T)", k, body[k], body[k], v, v)
		}
	}
	for k := range body {
		if _, ok := want[k]; !ok && k != "opaque" {
			t.Errorf("unexpected body field %q", k)
		}
	}
	for name := range body["headers"].(map[string]any) {
		if name != strings.ToLower(name) {
			t.Errorf("header name %q is not lower-case", name)
		}
	}
}

func TestWebhook_MethodDefaultsToPost(t *testing.T) {
	for _, m := range []string{"", "post", "PUT"} {
		srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
		w, _ := newWebhook(2*time.Second, "")
		if _, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: m}, "")); err != nil {
			t.Fatal(err)
		}
		if r := requests(); len(r) != 1 || r[0].method != "POST" {
			t.Errorf("hook method %q: requests %+v", m, r)
		}
	}
}

func TestWebhook_GetQueryString(t *testing.T) {
	srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
	w, _ := newWebhook(2*time.Second, "")
	g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL + "/auth?tenant=a%20b", Method: "get"}, "s"))
	if err != nil || !g.OK {
		t.Fatalf("grant %+v, err %v", g, err)
	}
	r := requests()[0]
	if r.method != "GET" || len(r.body) != 0 {
		t.Fatalf("request %s with body %q", r.method, r.body)
	}
	creds := sippCreds("john", "1234")
	want := map[string]string{
		"tenant": "a b", "method": "REGISTER", "expires": "3600", "scheme": "digest", "username": "john",
		"realm": "jambonz.org", "nonce": "abc", "uri": "sip:127.0.0.1:5060", "response": creds.Response,
		"algorithm": "MD5", "qop": "auth", "nc": "00000001", "cnonce": "6b8b4567",
		"source_address": "127.0.0.1", "source_port": "5090",
	}
	for k, v := range want {
		if got := r.query[k]; len(got) != 1 || got[0] != v {
			t.Errorf("query %s = %v, want %q", k, got, v)
		}
	}
	for k := range r.query {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected query parameter %q (GET hooks carry no headers)", k)
		}
	}
}

func TestWebhook_BasicAuthOnlyWithBothCredentials(t *testing.T) {
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"hookuser", "hookpass", true},
		{"hookuser", "", false},
		{"", "hookpass", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.pass, func(t *testing.T) {
			srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
			w, _ := newWebhook(2*time.Second, "")
			hook := &registrar.Webhook{URL: srv.URL, Method: "POST", Username: tt.user, Password: tt.pass}
			if _, err := w.Authenticate(context.Background(), authRequest(hook, "")); err != nil {
				t.Fatal(err)
			}
			h := requests()[0].header.Get("Authorization")
			req := &http.Request{Header: http.Header{"Authorization": {h}}}
			u, p, ok := req.BasicAuth()
			if ok != tt.want || (ok && (u != tt.user || p != tt.pass)) {
				t.Fatalf("Authorization %q: BasicAuth = %q %q %v", h, u, p, ok)
			}
			if !tt.want && h != "" {
				t.Fatalf("Authorization sent: %q", h)
			}
		})
	}
}

// checkSignature verifies a Jambonz-Signature header independently.
func checkSignature(t *testing.T, header, secret string, signed []byte, now time.Time) {
	t.Helper()
	parts := strings.Split(header, ",")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "t=") || !strings.HasPrefix(parts[1], "v1=") {
		t.Fatalf("Jambonz-Signature %q is not t=<ts>,v1=<hex>", header)
	}
	ts := strings.TrimPrefix(parts[0], "t=")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < now.Add(-time.Minute).Unix() || sec > now.Add(time.Minute).Unix() {
		t.Fatalf("timestamp %q is not the current unix time", ts)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(signed)
	want := hex.EncodeToString(mac.Sum(nil))
	if got := strings.TrimPrefix(parts[1], "v1="); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("v1 = %s, want %s (HMAC-SHA256 of %q)", got, want, ts+"."+string(signed))
	}
}

func TestWebhook_SignatureOverExactBody(t *testing.T) {
	const secret = "wh_secret_cJqgaDDgwNpNF2m8P6iR4B"
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
			w, _ := newWebhook(2*time.Second, "")
			if _, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: method}, secret)); err != nil {
				t.Fatal(err)
			}
			r := requests()[0]
			signed := r.body
			if method == "GET" {
				// The original signs JSON.stringify(null) quoted: the 6
				// bytes "null" including the quotes.
				signed = []byte(`"null"`)
			}
			checkSignature(t, r.header.Get("Jambonz-Signature"), secret, signed, time.Now())
		})
	}
}

func TestWebhook_NoSignatureWithoutSecret(t *testing.T) {
	srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
	w, _ := newWebhook(2*time.Second, "")
	if _, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, "")); err != nil {
		t.Fatal(err)
	}
	if h := requests()[0].header.Get("Jambonz-Signature"); h != "" {
		t.Fatalf("Jambonz-Signature %q sent without a secret", h)
	}
}

func TestSign_KnownValue(t *testing.T) {
	// Computed with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	got := Sign("secret", time.Unix(1700000000, 0), []byte(`{"a":1}`))
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(`1700000000.{"a":1}`))
	want := "t=1700000000,v1=" + hex.EncodeToString(mac.Sum(nil))
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestWebhook_UserAgent(t *testing.T) {
	for _, ua := range []string{"jambonz-sbc/1.0", ""} {
		t.Run("ua="+ua, func(t *testing.T) {
			srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
			w, _ := newWebhook(2*time.Second, ua)
			if _, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, "")); err != nil {
				t.Fatal(err)
			}
			got := requests()[0].header.Get("User-Agent")
			if ua != "" && got != ua {
				t.Fatalf("User-Agent = %q, want %q", got, ua)
			}
			if ua == "" && got == "" {
				t.Fatalf("no User-Agent at all")
			}
		})
	}
}

// A hook's HTTP code never passes through: refusals are 403, the rest 503.
func TestWebhook_Non200MappedTo403Or503(t *testing.T) {
	tests := []struct {
		http int
		sip  int
	}{
		{404, 403},
		{403, 403},
		{401, 403}, // a SIP 401 would lack WWW-Authenticate
		{429, 403},
		{500, 503},
		{503, 503},
		{504, 503},
		{201, 503},
		{204, 503},
		{302, 503},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.http), func(t *testing.T) {
			target, redirected := redirectTarget(t)
			srv, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.http == 302 {
					http.Redirect(w, r, target.URL, http.StatusFound)
					return
				}
				w.WriteHeader(tt.http)
				_, _ = io.WriteString(w, `{"status":"ok"}`)
			})
			w, al := newWebhook(2*time.Second, "")
			g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
			if err != nil {
				t.Fatal(err)
			}
			if g.Status != tt.sip || g.OK {
				t.Fatalf("grant = %+v, want Status %d", g, tt.sip)
			}
			if redirected.Load() {
				t.Fatal("redirect was followed")
			}
			a := al.all()
			if len(a) != 1 || a[0].Type != alerts.WebhookFailure || a[0].AccountSID != "acct-1" ||
				a[0].ServiceProviderSID != "sp-1" || a[0].Message == "" {
				t.Fatalf("alerts = %+v", a)
			}
		})
	}
}

func TestWebhook_ConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w, al := newWebhook(2*time.Second, "")
	hook := &registrar.Webhook{URL: "http://user:pw@" + addr + "/auth?token=secret", Method: "POST"}
	g, err := w.Authenticate(context.Background(), authRequest(hook, ""))
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != 503 || g.OK {
		t.Fatalf("grant = %+v", g)
	}
	a := al.all()
	if len(a) != 1 || a[0].Type != alerts.WebhookConnectionFailure || a[0].Message == "" || a[0].AccountSID != "acct-1" {
		t.Fatalf("alerts = %+v", a)
	}
	for _, s := range []string{a[0].Message, a[0].Detail} {
		if strings.Contains(s, "pw") || strings.Contains(s, "token=secret") {
			t.Errorf("alert leaks credentials: %q", s)
		}
	}
}

func TestWebhook_UnparseableURL(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		w, al := newWebhook(time.Second, "")
		g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: "http://[::1", Method: method}, ""))
		if err != nil || g.Status != 503 {
			t.Fatalf("%s: grant %+v err %v", method, g, err)
		}
		if a := al.all(); len(a) != 1 || a[0].Type != alerts.WebhookConnectionFailure {
			t.Fatalf("%s: alerts %+v", method, a)
		}
	}
}

func TestWebhook_TimeoutAnswers503Quickly(t *testing.T) {
	release := make(chan struct{})
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	w, al := newWebhook(150*time.Millisecond, "")
	start := time.Now()
	g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != 503 {
		t.Fatalf("grant = %+v", g)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("took %v", elapsed)
	}
	if a := al.all(); len(a) != 1 || a[0].Type != alerts.WebhookConnectionFailure {
		t.Fatalf("alerts = %+v", a)
	}
}

func TestWebhook_ContextCancelStopsCall(t *testing.T) {
	release := make(chan struct{})
	srv, _ := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	w, _ := newWebhook(10*time.Second, "")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	g, err := w.Authenticate(ctx, authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
	if err != nil || g.Status != 503 || time.Since(start) > 2*time.Second {
		t.Fatalf("grant %+v err %v after %v", g, err, time.Since(start))
	}
}

func TestWebhook_BadAnswers(t *testing.T) {
	huge := `{"status":"ok","msg":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name string
		body string
	}{
		{"larger than 64KB", huge},
		{"not json", `OK`},
		{"truncated json", `{"status":"ok"`},
		{"html", `<html>ok</html>`},
		{"expires not a number", `{"status":"ok","expires":"soon"}`},
		{"status wrong type", `{"status":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := hookServer(t, jsonAnswer(tt.body))
			w, _ := newWebhook(2*time.Second, "")
			g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
			if err != nil {
				t.Fatal(err)
			}
			if g.Status != 503 || g.OK {
				t.Fatalf("grant = %+v, want Status 503", g)
			}
		})
	}
}

func TestWebhook_AnswerFields(t *testing.T) {
	tr, fa := true, false
	tests := []struct {
		name string
		body string
		want registrar.Grant
	}{
		{"ok", `{"status":"ok"}`, registrar.Grant{Status: 200, OK: true}},
		{"OK upper case", `{"status":"OK"}`, registrar.Grant{Status: 200, OK: true}},
		{"Ok mixed case", `{"status":"Ok"}`, registrar.Grant{Status: 200, OK: true}},
		{"fail with msg", `{"status":"fail","msg":"invalid password"}`, registrar.Grant{Status: 200, Msg: "invalid password"}},
		{"missing status is a failure", `{}`, registrar.Grant{Status: 200}},
		{"anything else is a failure", `{"status":"okay"}`, registrar.Grant{Status: 200}},
		{"expires number", `{"status":"ok","expires":300}`, registrar.Grant{Status: 200, OK: true, Expires: 300}},
		{"expires string", `{"status":"ok","expires":"30"}`, registrar.Grant{Status: 200, OK: true, Expires: 30}},
		{"expires null", `{"status":"ok","expires":null}`, registrar.Grant{Status: 200, OK: true}},
		{"expires negative ignored", `{"status":"ok","expires":-5}`, registrar.Grant{Status: 200, OK: true}},
		{"expires fractional truncated", `{"status":"ok","expires":59.9}`, registrar.Grant{Status: 200, OK: true, Expires: 59}},
		{"hooks and flags", `{"status":"ok","call_hook":"https://a/call","call_status_hook":"https://a/status",
			"allow_direct_app_calling":true,"allow_direct_queue_calling":false}`,
			registrar.Grant{Status: 200, OK: true, CallHook: "https://a/call", CallStatusHook: "https://a/status",
				AllowDirectAppCalling: &tr, AllowDirectQueueCalling: &fa}},
		{"blacklist", `{"status":"fail","blacklist":true}`, registrar.Grant{Status: 200, Blacklist: true}},
		{"unknown fields ignored", `{"status":"ok","foo":{"bar":[1,2]}}`, registrar.Grant{Status: 200, OK: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := hookServer(t, jsonAnswer(tt.body))
			w, al := newWebhook(2*time.Second, "")
			g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, tt.want) {
				t.Fatalf("grant = %+v\nwant    %+v", g, tt.want)
			}
			if a := al.all(); len(a) != 0 {
				t.Fatalf("alerts on a 200 answer: %+v", a)
			}
		})
	}
}

func TestWebhook_HostileHeadersFiltered(t *testing.T) {
	srv, _ := hookServer(t, jsonAnswer(`{"status":"fail","headers":{
		"X-Good":"1",
		"X-Also-Good":"a b;c=d",
		"Via":"SIP/2.0/UDP evil.example.com",
		"via":"SIP/2.0/UDP evil.example.com",
		"Contact":"<sip:evil@evil>",
		"CSeq":"1 INVITE",
		"Call-ID":"x",
		"Content-Length":"100",
		"WWW-Authenticate":"Basic",
		"X-Injected":"a\r\nVia: SIP/2.0/UDP evil",
		"X-Nul":"a\u0000b",
		"X-LF":"a\nb",
		"Bad Name":"x",
		"X-Colon:":"x",
		"X\r\nVia":"x",
		"":"empty name",
		"X-Long":"`+strings.Repeat("v", 2000)+`"
	}}`))
	w, _ := newWebhook(2*time.Second, "")
	g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-Good": "1", "X-Also-Good": "a b;c=d"}
	if !reflect.DeepEqual(g.Headers, want) {
		t.Fatalf("headers = %q, want %q", g.Headers, want)
	}
}

func TestWebhook_TooManyHeadersCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"status":"fail","headers":{`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"X-H` + strconv.Itoa(i) + `":"v"`)
	}
	b.WriteString(`}}`)
	srv, _ := hookServer(t, jsonAnswer(b.String()))
	w, _ := newWebhook(2*time.Second, "")
	g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Headers) == 0 || len(g.Headers) > 16 {
		t.Fatalf("%d headers kept", len(g.Headers))
	}
}

func TestWebhook_ObserveCalled(t *testing.T) {
	srv, _ := hookServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) })
	w, _ := newWebhook(2*time.Second, "")
	var status []int
	w.Observe = func(_ time.Duration, s int) { status = append(status, s) }
	_, _ = w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
	if !reflect.DeepEqual(status, []int{404}) {
		t.Fatalf("observed %v", status)
	}
}
