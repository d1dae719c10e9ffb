// Package authserver is the customer side of the jambonz registration webhook (docs/contract.md#registration-webhook): an
// HTTP server that checks the digest credentials the sidecar forwards and answers
// {"status":"ok"|"fail",...}. Tests start it with Start; a benchmark program uses New and
// ListenAndServe. It records every request so tests can assert on what the sidecar sent, and
// has knobs (delay, HTTP status, raw body) for failure tests.
package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// User is one customer's SIP credential and what the customer answers on success.
type User struct {
	Password string
	// MaxExpires caps the granted expiry (seconds); 0 grants what was requested.
	MaxExpires     int
	CallHook       string
	CallStatusHook string
}

// Options configure a Server.
type Options struct {
	// Users maps realm -> username -> user.
	Users map[string]map[string]User
	// BasicUser/BasicPass, when BasicUser is set, must arrive as HTTP Basic auth (else 401).
	BasicUser, BasicPass string
	// WebhookSecret, when set, is the key of the Jambonz-Signature HMAC; the result is recorded,
	// a bad signature is not refused (the test decides).
	WebhookSecret string
	// Path served; default "/auth" (the URL in testdata/jambonz-db/test-data.sql).
	Path string
	// DisableRecording keeps only the count, for long benchmark runs.
	DisableRecording bool
}

// DefaultJambonzUsers is the fixture matching testdata/jambonz-db and testdata/sipp:
// realm jambonz.org with john/1234 (300 s, call hooks) and jane/5678 (45 s).
func DefaultJambonzUsers() map[string]map[string]User {
	return map[string]map[string]User{
		"jambonz.org": {
			"john": {Password: "1234", MaxExpires: 300,
				CallHook: "http://127.0.0.1/call", CallStatusHook: "http://127.0.0.1/call-status"},
			"jane": {Password: "5678", MaxExpires: 45},
		},
	}
}

// DefaultOptions is the webhook configured by testdata/jambonz-db/test-data.sql: Basic auth foo/bar,
// account webhook_secret "foobar", DefaultJambonzUsers.
func DefaultOptions() Options {
	return Options{Users: DefaultJambonzUsers(), BasicUser: "foo", BasicPass: "bar", WebhookSecret: "foobar"}
}

// Fields are the registration webhook's body fields (query parameters for GET).
type Fields struct {
	Method        string         `json:"method"`
	Expires       int            `json:"expires"`
	Scheme        string         `json:"scheme"`
	Username      string         `json:"username"`
	Realm         string         `json:"realm"`
	Nonce         string         `json:"nonce"`
	URI           string         `json:"uri"`
	Response      string         `json:"response"`
	Algorithm     string         `json:"algorithm"`
	Qop           string         `json:"qop"`
	NC            string         `json:"nc"`
	CNonce        string         `json:"cnonce"`
	Opaque        string         `json:"opaque"`
	SourceAddress string         `json:"source_address"`
	SourcePort    int            `json:"source_port"`
	Headers       map[string]any `json:"headers,omitempty"`
}

// Recorded is one request as the server received it.
type Recorded struct {
	At         time.Time
	HTTPMethod string
	Path       string
	RawQuery   string
	Body       []byte
	Header     http.Header
	// Copies of the headers tests assert on most.
	UserAgent, Authorization, ContentType, Signature string
	// BasicOK: the Basic credentials matched (true when none are required).
	BasicOK bool
	// SignatureValid: Jambonz-Signature verified with Options.WebhookSecret over "<t>.<raw body>"
	// (for GET the body is empty).
	SignatureValid bool
	// Fields as parsed; ParseError is set when the body or query did not parse (then the
	// server answered 400), e.g. expires sent as a string instead of a number.
	Fields     Fields
	ParseError string
	// Answer the server gave: HTTP status and body.
	Status     int
	AnswerBody string
}

// Answer is the JSON the customer returns.
type Answer struct {
	Status         string `json:"status"`
	Msg            string `json:"msg,omitempty"`
	Expires        *int   `json:"expires,omitempty"`
	CallHook       string `json:"call_hook,omitempty"`
	CallStatusHook string `json:"call_status_hook,omitempty"`
}

// Server is the webhook server; its methods are safe for concurrent use.
type Server struct {
	opts Options

	mu       sync.Mutex
	users    map[string]map[string]User
	recorded []Recorded
	count    int
	delay    time.Duration
	status   int
	body     *string

	addr string // set by Start / ListenAndServe once listening
}

// New returns a server; serve it with ListenAndServe or use it as an http.Handler.
func New(opts Options) *Server {
	if opts.Path == "" {
		opts.Path = "/auth"
	}
	users := make(map[string]map[string]User, len(opts.Users))
	for realm, us := range opts.Users {
		users[realm] = make(map[string]User, len(us))
		for name, u := range us {
			users[realm][name] = u
		}
	}
	return &Server{opts: opts, users: users}
}

// Start listens on addr (":0" or "127.0.0.1:0" picks a port, see URL) and stops when the test ends.
func Start(t testing.TB, addr string, opts Options) *Server {
	t.Helper()
	s := New(opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("authserver: %v", err)
	}
	srv := s.httpServer(ln)
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return s
}

// ListenAndServe serves on addr until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("authserver: %w", err)
	}
	srv := s.httpServer(ln)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		<-errc
		return nil
	}
}

func (s *Server) httpServer(ln net.Listener) *http.Server {
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	return &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
}

// Addr is the listening address (host:port), empty before listening.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the webhook URL to store in webhooks.url.
func (s *Server) URL() string { return "http://" + s.Addr() + s.opts.Path }

// SetUser adds or replaces a user.
func (s *Server) SetUser(realm, name string, u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[realm] == nil {
		s.users[realm] = map[string]User{}
	}
	s.users[realm][name] = u
}

// SetDelay makes every answer wait d (a request whose client gives up is abandoned).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetStatus makes every answer use HTTP status code (0 restores normal answers).
func (s *Server) SetStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

// SetBody makes every answer send raw instead of the computed JSON.
func (s *Server) SetBody(raw string) {
	s.mu.Lock()
	s.body = &raw
	s.mu.Unlock()
}

// Reset forgets the recorded requests and the fault knobs.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorded, s.count = nil, 0
	s.delay, s.status, s.body = 0, 0, nil
}

// Requests returns a copy of the recorded requests, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.recorded...)
}

// Count is the number of requests received (also with DisableRecording).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// ServeHTTP answers one webhook request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := Recorded{
		At:            time.Now(),
		HTTPMethod:    r.Method,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		Body:          body,
		Header:        r.Header.Clone(),
		UserAgent:     r.UserAgent(),
		Authorization: r.Header.Get("Authorization"),
		ContentType:   r.Header.Get("Content-Type"),
		Signature:     r.Header.Get("Jambonz-Signature"),
	}
	if s.opts.WebhookSecret != "" {
		rec.SignatureValid = VerifySignature(s.opts.WebhookSecret, rec.Signature, body)
	}
	user, pass, ok := r.BasicAuth()
	rec.BasicOK = s.opts.BasicUser == "" || (ok && user == s.opts.BasicUser && pass == s.opts.BasicPass)

	status, answer := s.answer(r, &rec)

	s.mu.Lock()
	delay, forcedStatus, forcedBody := s.delay, s.status, s.body
	s.mu.Unlock()
	if forcedStatus != 0 {
		status = forcedStatus
	}
	if forcedBody != nil {
		answer = *forcedBody
	}
	rec.Status, rec.AnswerBody = status, answer
	s.record(rec)

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

func (s *Server) record(rec Recorded) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if !s.opts.DisableRecording {
		s.recorded = append(s.recorded, rec)
	}
}

// answer computes the normal HTTP status and body and fills rec.Fields.
func (s *Server) answer(r *http.Request, rec *Recorded) (int, string) {
	if r.URL.Path != s.opts.Path {
		return http.StatusNotFound, `{"msg":"not found"}`
	}
	// Fields are parsed before the Basic check so that a refused request is recorded in full.
	var err error
	switch r.Method {
	case http.MethodPost:
		err = json.Unmarshal(rec.Body, &rec.Fields)
	case http.MethodGet:
		rec.Fields, err = parseQuery(r.URL.Query())
	default:
		return http.StatusMethodNotAllowed, `{"msg":"method not allowed"}`
	}
	if err != nil {
		rec.ParseError = err.Error()
	}
	if !rec.BasicOK {
		return http.StatusUnauthorized, `{"msg":"bad basic auth"}`
	}
	if err != nil {
		return http.StatusBadRequest, mustJSON(map[string]string{"msg": err.Error()})
	}

	f := rec.Fields
	s.mu.Lock()
	u, known := s.users[f.Realm][f.Username]
	s.mu.Unlock()
	if !known {
		return http.StatusOK, mustJSON(Answer{Status: "fail", Msg: "unknown user"})
	}
	if !VerifyDigest(f, u.Password) {
		return http.StatusOK, mustJSON(Answer{Status: "fail", Msg: "invalid password"})
	}
	expires := f.Expires
	if u.MaxExpires > 0 && expires > u.MaxExpires {
		expires = u.MaxExpires
	}
	return http.StatusOK, mustJSON(Answer{Status: "ok", Expires: &expires,
		CallHook: u.CallHook, CallStatusHook: u.CallStatusHook})
}

// parseQuery reads the GET form; numbers must be numbers, as in the JSON body.
func parseQuery(q url.Values) (Fields, error) {
	f := Fields{
		Method: q.Get("method"), Scheme: q.Get("scheme"), Username: q.Get("username"),
		Realm: q.Get("realm"), Nonce: q.Get("nonce"), URI: q.Get("uri"), Response: q.Get("response"),
		Algorithm: q.Get("algorithm"), Qop: q.Get("qop"), NC: q.Get("nc"), CNonce: q.Get("cnonce"),
		Opaque: q.Get("opaque"), SourceAddress: q.Get("source_address"),
	}
	for name, dst := range map[string]*int{"expires": &f.Expires, "source_port": &f.SourcePort} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return f, fmt.Errorf("%s: %w", name, err)
			}
			*dst = n
		}
	}
	return f, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return string(b)
}

// DigestResponse computes the RFC 2617 / RFC 7616 response for qop "auth" (or no qop when qop
// is empty). algorithm is MD5 (also when empty), MD5-sess, SHA-256 or SHA-256-sess.
func DigestResponse(algorithm, username, realm, password, method, uri, nonce, nc, cnonce, qop string) (string, error) {
	alg := strings.ToUpper(algorithm)
	var newHash func() hash.Hash
	switch strings.TrimSuffix(alg, "-SESS") {
	case "", "MD5":
		newHash = md5.New
	case "SHA-256":
		newHash = sha256.New
	default:
		return "", fmt.Errorf("unsupported digest algorithm %q", algorithm)
	}
	h := func(parts ...string) string {
		d := newHash()
		io.WriteString(d, strings.Join(parts, ":"))
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := h(username, realm, password)
	if strings.HasSuffix(alg, "-SESS") {
		ha1 = h(ha1, nonce, cnonce)
	}
	ha2 := h(method, uri)
	switch strings.ToLower(qop) {
	case "":
		return h(ha1, nonce, ha2), nil
	case "auth":
		return h(ha1, nonce, nc, cnonce, qop, ha2), nil
	default:
		// auth-int would need the SIP body, which the webhook does not carry.
		return "", fmt.Errorf("unsupported qop %q", qop)
	}
}

// VerifyDigest reports whether f.Response is the digest of password for the fields.
func VerifyDigest(f Fields, password string) bool {
	want, err := DigestResponse(f.Algorithm, f.Username, f.Realm, password, f.Method, f.URI,
		f.Nonce, f.NC, f.CNonce, f.Qop)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(f.Response))) == 1
}

// SignatureHeader builds a Jambonz-Signature value for body at time t (for tests of the verifier).
func SignatureHeader(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + sign(secret, ts, body)
}

func sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	io.WriteString(m, ts+".")
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a "t=<unix>,v1=<hex>[,v1=...]" header against body. The timestamp's
// age is not checked: tests compare it themselves if they care.
func VerifySignature(secret, header string, body []byte) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return false
	}
	want := []byte(sign(secret, ts, body))
	for _, sig := range sigs {
		if hmac.Equal(want, []byte(strings.ToLower(sig))) {
			return true
		}
	}
	return false
}
