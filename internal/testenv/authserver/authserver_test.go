package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestDigestResponse_KnownVectors(t *testing.T) {
	for _, tc := range []struct {
		name                                                        string
		alg, user, realm, pass, method, uri, nonce, nc, cnonce, qop string
		want                                                        string
	}{
		{
			name: "RFC 2617 3.5 MD5 qop=auth", user: "Mufasa", realm: "testrealm@host.com",
			pass: "Circle Of Life", method: "GET", uri: "/dir/index.html",
			nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", nc: "00000001", cnonce: "0a4f113b", qop: "auth",
			want: "6629fae49393a05397450978507c4ef1",
		},
		{
			name: "RFC 2069 MD5 without qop", user: "Mufasa", realm: "testrealm@host.com",
			pass: "CircleOfLife", method: "GET", uri: "/dir/index.html",
			nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
			want:  "1949323746fe6a43ef61f9606e7febea",
		},
		{
			name: "RFC 7616 3.9.1 MD5", alg: "MD5", user: "Mufasa", realm: "http-auth@example.org",
			pass: "Circle of Life", method: "GET", uri: "/dir/index.html",
			nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc: "00000001",
			cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop: "auth",
			want: "8ca523f5e9506fed4657c9700eebdbec",
		},
		{
			name: "RFC 7616 3.9.1 SHA-256", alg: "SHA-256", user: "Mufasa", realm: "http-auth@example.org",
			pass: "Circle of Life", method: "GET", uri: "/dir/index.html",
			nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc: "00000001",
			cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop: "auth",
			want: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DigestResponse(tc.alg, tc.user, tc.realm, tc.pass, tc.method, tc.uri, tc.nonce, tc.nc, tc.cnonce, tc.qop)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDigestResponse_RejectsUnsupported(t *testing.T) {
	if _, err := DigestResponse("SHA-512-256", "u", "r", "p", "REGISTER", "sip:r", "n", "", "", ""); err == nil {
		t.Error("unknown algorithm accepted")
	}
	if _, err := DigestResponse("MD5", "u", "r", "p", "REGISTER", "sip:r", "n", "00000001", "c", "auth-int"); err == nil {
		t.Error("auth-int accepted")
	}
}

// register builds the webhook fields a sidecar would forward for user/password.
func register(t *testing.T, user, realm, password, alg, qop string, expires int) Fields {
	t.Helper()
	f := Fields{Method: "REGISTER", Expires: expires, Scheme: "digest", Username: user, Realm: realm,
		Nonce: "abc123", URI: "sip:" + realm, Algorithm: alg, Qop: qop,
		SourceAddress: "127.0.0.1", SourcePort: 5070}
	if qop != "" {
		f.NC, f.CNonce = "00000001", "deadbeef"
	}
	resp, err := DigestResponse(alg, user, realm, password, f.Method, f.URI, f.Nonce, f.NC, f.CNonce, qop)
	if err != nil {
		t.Fatal(err)
	}
	f.Response = resp
	return f
}

func TestVerifyDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Fields
		pass string
		want bool
	}{
		{"md5 qop auth", register(t, "john", "jambonz.org", "1234", "MD5", "auth", 60), "1234", true},
		{"md5 no qop", register(t, "john", "jambonz.org", "1234", "", "", 60), "1234", true},
		{"sha-256", register(t, "john", "jambonz.org", "1234", "SHA-256", "auth", 60), "1234", true},
		{"md5-sess", register(t, "john", "jambonz.org", "1234", "MD5-sess", "auth", 60), "1234", true},
		{"wrong password", register(t, "jane", "jambonz.org", "8765", "MD5", "auth", 60), "5678", false},
		{"upper-case hex response", func() Fields {
			f := register(t, "john", "jambonz.org", "1234", "", "auth", 60)
			f.Response = strings.ToUpper(f.Response)
			return f
		}(), "1234", true},
		{"unsupported algorithm", Fields{Algorithm: "SHA-1", Response: "x"}, "1234", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyDigest(tc.f, tc.pass); got != tc.want {
				t.Fatalf("VerifyDigest = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"method":"REGISTER"}`)
	good := SignatureHeader("foobar", time.Unix(1700000000, 0), body)
	if !strings.HasPrefix(good, "t=1700000000,v1=") {
		t.Fatalf("header %q", good)
	}
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		want                 bool
	}{
		{"valid", "foobar", good, body, true},
		{"second v1 valid", "foobar", good[:strings.Index(good, "v1=")] + "v1=00," + good[strings.Index(good, "v1="):], body, true},
		{"other secret", "other", good, body, false},
		{"body changed", "foobar", good, []byte(`{"method":"INVITE"}`), false},
		{"missing", "foobar", "", body, false},
		{"no timestamp", "foobar", good[strings.Index(good, "v1="):], body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifySignature(tc.secret, tc.header, tc.body); got != tc.want {
				t.Fatalf("VerifySignature = %v, want %v", got, tc.want)
			}
		})
	}
}

// post sends f as the sidecar does (JSON, Basic auth, signature) to h.
func post(t *testing.T, h http.Handler, f Fields, basicUser, basicPass string) (int, Answer) {
	t.Helper()
	body, _ := json.Marshal(f)
	req := httptest.NewRequest(http.MethodPost, "/auth", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "test-agent")
	req.Header.Set("Jambonz-Signature", SignatureHeader("foobar", time.Now(), body))
	req.SetBasicAuth(basicUser, basicPass)
	return do(t, h, req)
}

func do(t *testing.T, h http.Handler, req *http.Request) (int, Answer) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	var a Answer
	if rr.Code == http.StatusOK {
		if err := json.Unmarshal(rr.Body.Bytes(), &a); err != nil {
			t.Fatalf("answer %q: %v", rr.Body.String(), err)
		}
	}
	return rr.Code, a
}

func intp(n int) *int { return &n }

func TestServer_Post(t *testing.T) {
	for _, tc := range []struct {
		name       string
		f          Fields
		basic      [2]string
		wantStatus int
		want       Answer
	}{
		{"john granted and capped at 300", register(t, "john", "jambonz.org", "1234", "", "auth", 3600), [2]string{"foo", "bar"},
			200, Answer{Status: "ok", Expires: intp(300), CallHook: "http://127.0.0.1/call", CallStatusHook: "http://127.0.0.1/call-status"}},
		{"shorter request kept", register(t, "john", "jambonz.org", "1234", "", "auth", 60), [2]string{"foo", "bar"},
			200, Answer{Status: "ok", Expires: intp(60), CallHook: "http://127.0.0.1/call", CallStatusHook: "http://127.0.0.1/call-status"}},
		{"jane capped at 45", register(t, "jane", "jambonz.org", "5678", "SHA-256", "auth", 3600), [2]string{"foo", "bar"},
			200, Answer{Status: "ok", Expires: intp(45)}},
		{"unregister keeps 0", register(t, "jane", "jambonz.org", "5678", "", "", 0), [2]string{"foo", "bar"},
			200, Answer{Status: "ok", Expires: intp(0)}},
		{"bad password", register(t, "jane", "jambonz.org", "8765", "", "auth", 3600), [2]string{"foo", "bar"},
			200, Answer{Status: "fail", Msg: "invalid password"}},
		{"unknown user", register(t, "bob", "jambonz.org", "1234", "", "auth", 3600), [2]string{"foo", "bar"},
			200, Answer{Status: "fail", Msg: "unknown user"}},
		{"unknown realm", register(t, "john", "fail.com", "1234", "", "auth", 3600), [2]string{"foo", "bar"},
			200, Answer{Status: "fail", Msg: "unknown user"}},
		{"wrong basic auth", register(t, "john", "jambonz.org", "1234", "", "auth", 3600), [2]string{"foo", "baz"},
			401, Answer{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(DefaultOptions())
			code, got := post(t, s, tc.f, tc.basic[0], tc.basic[1])
			if code != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d", code, tc.wantStatus)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if string(gj) != string(wj) {
				t.Fatalf("answer %s, want %s", gj, wj)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || s.Count() != 1 {
				t.Fatalf("recorded %d (count %d), want 1", len(reqs), s.Count())
			}
			r := reqs[0]
			if !r.SignatureValid || r.UserAgent != "test-agent" || r.ContentType != "application/json" ||
				!strings.HasPrefix(r.Authorization, "Basic ") || r.Fields.Username != tc.f.Username || r.Status != code {
				t.Fatalf("recorded %+v", r)
			}
		})
	}
}

func TestServer_GetQueryString(t *testing.T) {
	s := New(DefaultOptions())
	f := register(t, "john", "jambonz.org", "1234", "", "auth", 600)
	q := url.Values{}
	for k, v := range map[string]string{"method": f.Method, "expires": strconv.Itoa(f.Expires), "scheme": f.Scheme,
		"username": f.Username, "realm": f.Realm, "nonce": f.Nonce, "uri": f.URI, "response": f.Response,
		"qop": f.Qop, "nc": f.NC, "cnonce": f.CNonce, "source_address": "10.0.0.1", "source_port": "5062"} {
		q.Set(k, v)
	}
	req := httptest.NewRequest(http.MethodGet, "/auth?"+q.Encode(), nil)
	req.SetBasicAuth("foo", "bar")
	code, a := do(t, s, req)
	if code != 200 || a.Status != "ok" || a.Expires == nil || *a.Expires != 300 {
		t.Fatalf("HTTP %d %+v", code, a)
	}
	r := s.Requests()[0]
	if r.HTTPMethod != http.MethodGet || r.Fields.SourcePort != 5062 || r.Fields.SourceAddress != "10.0.0.1" {
		t.Fatalf("recorded %+v", r)
	}
	// The header is absent: with a secret configured the request is recorded as unsigned.
	if r.SignatureValid {
		t.Fatal("unsigned request recorded as valid")
	}
}

func TestServer_RejectsNonNumbers(t *testing.T) {
	s := New(DefaultOptions())
	req := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(`{"method":"REGISTER","expires":"3600"}`))
	req.SetBasicAuth("foo", "bar")
	if code, _ := do(t, s, req); code != http.StatusBadRequest {
		t.Fatalf("expires as string: HTTP %d, want 400", code)
	}
	if s.Requests()[0].ParseError == "" {
		t.Fatal("parse error not recorded")
	}
	req = httptest.NewRequest(http.MethodGet, "/auth?expires=soon", nil)
	req.SetBasicAuth("foo", "bar")
	if code, _ := do(t, s, req); code != http.StatusBadRequest {
		t.Fatalf("GET expires=soon: HTTP %d, want 400", code)
	}
}

func TestServer_FaultKnobs(t *testing.T) {
	s := New(DefaultOptions())
	f := register(t, "john", "jambonz.org", "1234", "", "auth", 60)

	s.SetStatus(http.StatusServiceUnavailable)
	if code, _ := post(t, s, f, "foo", "bar"); code != http.StatusServiceUnavailable {
		t.Fatalf("SetStatus: HTTP %d", code)
	}
	s.SetStatus(0)
	s.SetBody(`{"status":"fail","msg":"forced"}`)
	if _, a := post(t, s, f, "foo", "bar"); a.Status != "fail" || a.Msg != "forced" {
		t.Fatalf("SetBody: %+v", a)
	}
	s.Reset()
	if s.Count() != 0 || len(s.Requests()) != 0 {
		t.Fatal("Reset kept requests")
	}
	if _, a := post(t, s, f, "foo", "bar"); a.Status != "ok" {
		t.Fatalf("after Reset: %+v", a)
	}

	s.SetDelay(150 * time.Millisecond)
	start := time.Now()
	post(t, s, f, "foo", "bar")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("SetDelay: answered after %v", d)
	}
}

func TestServer_DisableRecordingStillCounts(t *testing.T) {
	opts := DefaultOptions()
	opts.DisableRecording = true
	s := New(opts)
	post(t, s, register(t, "john", "jambonz.org", "1234", "", "auth", 60), "foo", "bar")
	if s.Count() != 1 || len(s.Requests()) != 0 {
		t.Fatalf("count %d, recorded %d", s.Count(), len(s.Requests()))
	}
}

func TestStart_ServesOverHTTP(t *testing.T) {
	s := Start(t, "127.0.0.1:0", DefaultOptions())
	body, _ := json.Marshal(register(t, "john", "jambonz.org", "1234", "", "auth", 120))
	req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader(body))
	req.SetBasicAuth("foo", "bar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"ok"`) || !strings.Contains(string(b), `"expires":120`) {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}
}

func TestListenAndServe_StopsWithContext(t *testing.T) {
	s := New(DefaultOptions())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Addr() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + s.Addr() + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
}

// The fixture must agree with the sipp user lists in testdata/sipp.
func TestDefaultJambonzUsers_MatchSippCSV(t *testing.T) {
	dir := testenv.ScenarioDir(t)
	for file, wantOK := range map[string]bool{
		"good_user.csv": true, "good_user2.csv": true, "bad_password.csv": false, "bad_realm.csv": false,
	} {
		text, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		// Lines after the header: user;domain;[authentication username=U password=P]
		var user, realm, pass string
		for _, line := range strings.Split(string(text), "\n") {
			parts := strings.Split(line, ";")
			if len(parts) != 3 || strings.HasPrefix(line, "#") {
				continue
			}
			user, realm = parts[0], parts[1]
			_, pass, _ = strings.Cut(parts[2], "password=")
			pass = strings.TrimSuffix(strings.TrimSpace(pass), "]")
		}
		if user == "" {
			t.Fatalf("%s: no credentials line", file)
		}
		s := New(DefaultOptions())
		_, a := post(t, s, register(t, user, realm, pass, "", "auth", 3600), "foo", "bar")
		if got := a.Status == "ok"; got != wantOK {
			t.Errorf("%s (%s@%s/%s): status %q, want ok=%v", file, user, realm, pass, a.Status, wantOK)
		}
	}
}
