package registrar_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	phoneSource = "127.0.0.1:5090"
	sbcAddress  = "udp/127.0.0.1:5060,tcp/127.0.0.1:5060"
)

var errStore = errors.New("store unavailable")

// memStore is an in-memory registrar.Store.
type memStore struct {
	mu       sync.Mutex
	bindings map[string]registrar.Binding
	ttls     map[string]time.Duration
	// counts overrides CountRealm per realm when set.
	counts map[string]int

	bindingErr, bindErr, unbindErr, countErr error

	binds, unbinds, lookups, countCalls int
}

func newStore() *memStore {
	return &memStore{bindings: map[string]registrar.Binding{}, ttls: map[string]time.Duration{}}
}

func (s *memStore) Binding(_ context.Context, aor string) (*registrar.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if s.bindingErr != nil {
		return nil, s.bindingErr
	}
	b, ok := s.bindings[aor]
	if !ok {
		return nil, nil
	}
	return &b, nil
}

func (s *memStore) Bind(_ context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.binds++
	if s.bindErr != nil {
		return s.bindErr
	}
	s.bindings[aor] = b
	s.ttls[aor] = ttl
	return nil
}

func (s *memStore) Unbind(_ context.Context, aor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unbinds++
	if s.unbindErr != nil {
		return s.unbindErr
	}
	delete(s.bindings, aor)
	delete(s.ttls, aor)
	return nil
}

func (s *memStore) CountRealm(_ context.Context, realm string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countCalls++
	if s.countErr != nil {
		return 0, s.countErr
	}
	if n, ok := s.counts[realm]; ok {
		return n, nil
	}
	n := 0
	for aor := range s.bindings {
		if strings.HasSuffix(aor, "@"+realm) {
			n++
		}
	}
	return n, nil
}

// put stores a binding for aor from source expiring in left.
func (s *memStore) put(aor, source string, left time.Duration) {
	s.bindings[aor] = registrar.Binding{
		Contact:    "sip:" + strings.Split(aor, "@")[0] + "@" + source,
		SBCAddress: sbcAddress,
		Protocol:   "udp",
		Proxy:      "sip:" + source,
		ExpiryTime: testNow.Add(left).UnixMilli(),
	}
	s.ttls[aor] = left
}

// mapDir is a map-backed registrar.Directory.
type mapDir struct {
	mu       sync.Mutex
	accounts map[string]*registrar.Account
	caps     map[string]registrar.Capacities
	clients  map[string]*registrar.Client // by username
	err      error                        // AccountByRealm error
	capsErr  error
	realms   []string // AccountByRealm calls
}

func (d *mapDir) AccountByRealm(_ context.Context, realm string) (*registrar.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.realms = append(d.realms, realm)
	if d.err != nil {
		return nil, d.err
	}
	return d.accounts[realm], nil
}

func (d *mapDir) Capacities(_ context.Context, sid string) (registrar.Capacities, error) {
	if d.capsErr != nil {
		return registrar.Capacities{}, d.capsErr
	}
	return d.caps[sid], nil
}

func (d *mapDir) Client(_ context.Context, _ string, username string) (*registrar.Client, error) {
	return d.clients[username], nil
}

func jambonzAccount() *registrar.Account {
	return &registrar.Account{SID: "acct-1", ServiceProviderSID: "sp-1", Realm: "jambonz.org", Active: true, DeviceToCallRatio: 5}
}

func newDir() *mapDir {
	return &mapDir{
		accounts: map[string]*registrar.Account{"jambonz.org": jambonzAccount()},
		caps:     map[string]registrar.Capacities{},
		clients:  map[string]*registrar.Client{},
	}
}

// fakeAuth is a scripted registrar.Authenticator.
type fakeAuth struct {
	mu     sync.Mutex
	grant  registrar.Grant
	err    error
	panics bool
	calls  []registrar.AuthRequest
	// gate, when set, holds the first call until it is closed (a slow
	// webhook); entered is closed when that call arrives.
	gate, entered chan struct{}
}

func (a *fakeAuth) Authenticate(_ context.Context, req registrar.AuthRequest) (registrar.Grant, error) {
	a.mu.Lock()
	a.calls = append(a.calls, req)
	first := len(a.calls) == 1
	a.mu.Unlock()
	if first && a.gate != nil {
		close(a.entered)
		<-a.gate
	}
	if a.panics {
		panic("authenticator exploded")
	}
	return a.grant, a.err
}

func (a *fakeAuth) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

func okAuth() *fakeAuth { return &fakeAuth{grant: registrar.Grant{Status: 200, OK: true}} }

// recAlerter records alerts.
type recAlerter struct {
	mu  sync.Mutex
	got []alerts.Alert
}

func (r *recAlerter) Alert(_ context.Context, a alerts.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
}

// recWriter records responses.
type recWriter struct {
	res []*sipfront.Response
	err error
}

func (w *recWriter) Respond(_ context.Context, r *sipfront.Response) error {
	w.res = append(w.res, r)
	return w.err
}

// env is one registrar under test with its fakes.
type env struct {
	store   *memStore
	dir     *mapDir
	webhook *fakeAuth
	clients *fakeAuth
	alerts  *recAlerter
	hosting bool
	algs    []string
	// maxExpires and minExpires are Deps.MaxExpires and MinExpires.
	maxExpires, minExpires int
	// guard, when set, replaces the default admit-all guard.
	guard *recGuard
	// nonces, when set, replaces the default per-process issuer.
	nonces registrar.Nonces
	// pub, when set, is Deps.Events.
	pub events.Publisher
	// st, when set, is Deps.Store instead of store (a wrapper of it).
	st registrar.Store
	// log, when set, is Deps.Log instead of a discarding logger.
	log *slog.Logger
	reg *registrar.Registrar
}

func newEnv() *env {
	return &env{store: newStore(), dir: newDir(), webhook: okAuth(), clients: okAuth(), alerts: &recAlerter{}}
}

func (e *env) storeDep() registrar.Store {
	if e.st != nil {
		return e.st
	}
	return e.store
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// registrar returns the env's registrar, built on first use so that tests
// can configure the fakes first. It is kept across requests: the nonce of a
// challenge is only valid for the registrar that issued it.
func (e *env) registrar() *registrar.Registrar {
	if e.reg != nil {
		return e.reg
	}
	var g registrar.Guard
	if e.guard != nil {
		g = e.guard
	}
	log := e.log
	if log == nil {
		log = quietLog()
	}
	e.reg = registrar.New(registrar.Deps{
		Guard:      g,
		Nonces:     e.nonces,
		Store:      e.storeDep(),
		Directory:  e.dir,
		Webhook:    e.webhook,
		Clients:    e.clients,
		Alerter:    e.alerts,
		Log:        log,
		Hosting:    e.hosting,
		Algorithms: e.algs,
		MaxExpires: e.maxExpires,
		MinExpires: e.minExpires,
		Now:        func() time.Time { return testNow },
		Events:     e.pub,
	})
	return e.reg
}

// serve runs one request through the registrar and returns the single
// response it must have sent.
func (e *env) serve(t *testing.T, req *sipfront.Request) *sipfront.Response {
	t.Helper()
	w := &recWriter{}
	e.registrar().ServeSIP(context.Background(), w, req)
	if len(w.res) != 1 {
		t.Fatalf("registrar sent %d responses, want exactly 1", len(w.res))
	}
	return w.res[0]
}

// authCalls is the number of authenticator calls, webhook and clients.
func (e *env) authCalls() int {
	n := e.webhook.count()
	if e.clients != nil {
		n += e.clients.count()
	}
	return n
}

func (e *env) now() func() time.Time { return func() time.Time { return testNow } }

// msg is a REGISTER built from ordered headers; options edit it.
type msg struct {
	ruri    string
	headers [][2]string
	source  string
	trans   string
}

type opt func(*msg)

// sippAuthorization is an Authorization header as sipp sends it (the digest
// uri is the target address, not the Request-URI), for nonce and password.
func sippAuthorization(nonce, password string) string {
	return authorizationFor("jambonz.org", nonce, "00000001", password)
}

// authorizationFor is sippAuthorization for another realm and nonce count.
func authorizationFor(realm, nonce, nc, password string) string {
	c := &digest.Credentials{Username: "john", Realm: realm, Nonce: nonce, URI: "sip:127.0.0.1:5060",
		QOP: "auth", NC: nc, CNonce: "6b8b4567", Algorithm: "MD5"}
	resp, _ := digest.Response(c, "REGISTER", password)
	return `Digest username="john",realm="` + realm + `",cnonce="6b8b4567",nc=` + nc + `,qop=auth,uri="sip:127.0.0.1:5060",nonce="` +
		nonce + `",response="` + resp + `",algorithm=MD5`
}

var (
	nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)
	realmRE = regexp.MustCompile(`realm="([^"]+)"`)
)

// authorized runs the REGISTER built from opts twice, as a phone does: the
// first time without credentials, which must be challenged, then with an
// Authorization header answering that challenge (password 1234). It returns
// the second response.
func (e *env) authorized(t *testing.T, opts ...opt) *sipfront.Response {
	t.Helper()
	return e.authorizedWith(t, "1234", opts...)
}

func (e *env) authorizedWith(t *testing.T, password string, opts ...opt) *sipfront.Response {
	t.Helper()
	first := e.serve(t, register(t, append(opts, set("Authorization", ""))...))
	if first.Code != 401 {
		t.Fatalf("unauthenticated REGISTER answered %d, want a 401 challenge (headers %v)", first.Code, first.Headers)
	}
	m := nonceRE.FindStringSubmatch(first.Get("WWW-Authenticate"))
	if m == nil {
		t.Fatalf("no nonce in %q", first.Get("WWW-Authenticate"))
	}
	realm := realmRE.FindStringSubmatch(first.Get("WWW-Authenticate"))[1]
	second := append(append([]opt{}, opts...), set("CSeq", "2 REGISTER"), set("Authorization", authorizationFor(realm, m[1], "00000001", password)))
	return e.serve(t, register(t, second...))
}

func defaultMsg() *msg {
	return &msg{
		ruri: "sip:jambonz.org",
		headers: [][2]string{
			{"Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-524287-1;rport"},
			{"Max-Forwards", "70"},
			{"From", "<sip:john@jambonz.org>;tag=abc"},
			{"To", "<sip:john@jambonz.org>"},
			{"Call-ID", "call-1@127.0.0.1"},
			{"CSeq", "1 REGISTER"},
			{"Contact", "<sip:john@127.0.0.1:5090>"},
			{"Expires", "3600"},
			{"User-Agent", "sipp"},
		},
		source: phoneSource,
		trans:  "udp",
	}
}

// set replaces (or appends) a header; value "" removes it.
func set(name, value string) opt {
	return func(m *msg) {
		out := m.headers[:0:0]
		done := false
		for _, h := range m.headers {
			if strings.EqualFold(h[0], name) {
				if !done && value != "" {
					out = append(out, [2]string{name, value})
				}
				done = true
				continue
			}
			out = append(out, h)
		}
		if !done && value != "" {
			out = append(out, [2]string{name, value})
		}
		m.headers = out
	}
}

// add appends a header even when one of that name exists.
func add(name, value string) opt {
	return func(m *msg) { m.headers = append(m.headers, [2]string{name, value}) }
}

func ruri(u string) opt          { return func(m *msg) { m.ruri = u } }
func from(src string) opt        { return func(m *msg) { m.source = src } }
func transport(t string) opt     { return func(m *msg) { m.trans = t } }
func contact(v string) opt       { return set("Contact", v) }
func expiresHeader(v string) opt { return set("Expires", v) }

func (m *msg) raw() string {
	var b strings.Builder
	b.WriteString("REGISTER " + m.ruri + " SIP/2.0\r\n")
	for _, h := range m.headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// register builds a sipfront.Request from the default REGISTER and opts.
func register(t testing.TB, opts ...opt) *sipfront.Request {
	t.Helper()
	m := defaultMsg()
	for _, o := range opts {
		o(m)
	}
	parsed, err := sip.ParseMessage([]byte(m.raw()))
	if err != nil {
		t.Fatalf("ParseMessage: %v\n%s", err, m.raw())
	}
	req, ok := parsed.(*sip.Request)
	if !ok {
		t.Fatalf("parsed %T", parsed)
	}
	return &sipfront.Request{
		Msg:        req,
		Source:     netip.MustParseAddrPort(m.source),
		Transport:  m.trans,
		SBCAddress: sbcAddress,
	}
}

// expect checks the code and the named headers ("" means absent).
func expect(t *testing.T, res *sipfront.Response, code int, headers map[string]string) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("code = %d (%s), want %d; headers %v", res.Code, res.Reason, code, res.Headers)
	}
	for name, want := range headers {
		if got := res.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// recGuard admits everything and records failed authentications.
type recGuard struct {
	mu       sync.Mutex
	failures []string // "<ip> <aor>"
}

func (g *recGuard) Admit(context.Context, netip.Addr, string) guard.Verdict { return guard.Allow }
func (g *recGuard) AdmitAoR(context.Context, string) bool                   { return true }
func (g *recGuard) AuthFailed(_ context.Context, src netip.Addr, aor string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = append(g.failures, src.String()+" "+aor)
}
func (g *recGuard) Blacklist(context.Context, netip.Addr) {}
func (g *recGuard) Drop() bool                            { return false }

func (g *recGuard) failed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.failures...)
}
