package registrar_test

import (
	"context"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// panicSpotter is a slog handler that notices the registrar's recovered
// panics: a recovered panic is still a bug the fuzzer must report.
type panicSpotter struct{ panics *atomic.Int32 }

func (p panicSpotter) Enabled(context.Context, slog.Level) bool { return true }
func (p panicSpotter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.panics.Add(1)
	}
	return nil
}
func (p panicSpotter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panicSpotter) WithGroup(string) slog.Handler      { return p }

// lenientParser mirrors the native front's: unparseable To/From/Contact
// headers are kept as generic headers instead of failing the whole message,
// so the registrar sees requests whose typed accessors return nil.
var lenientParser = func() *sip.Parser {
	ps := sip.HeadersParser{}
	for name, p := range sip.DefaultHeadersParser() {
		switch name {
		case "to", "t", "from", "f", "contact", "m":
			canonical := map[string]string{"to": "To", "t": "To", "from": "From", "f": "From"}[name]
			if canonical == "" {
				canonical = "Contact"
			}
			ps[name] = func(headerName []byte, data string) (sip.Header, error) {
				h, err := p(headerName, data)
				if err == nil || (h != nil && err.Error() == "comma detected") {
					return h, err
				}
				return sip.NewHeader(canonical, strings.TrimSpace(data)), nil
			}
		default:
			ps[name] = p
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(ps))
}()

var fuzzNonceRE = regexp.MustCompile(`(?i)(nonce\s*=\s*)("[^"]*"|[^,\s]*)`)

// FuzzServeRegister feeds arbitrary bytes through sipgo's parser and, when
// they make a request, through the registrar with in-memory fakes. The
// registrar must never panic and must answer exactly once with a final code.
// When challenged, the request is replayed with the issued nonce so that the
// authentication and bind stages are reached too.
// Seeds live in testdata/fuzz/FuzzServeRegister.
func FuzzServeRegister(f *testing.F) {
	f.Add([]byte(defaultMsg().raw()))
	f.Fuzz(func(t *testing.T, data []byte) {
		// sipgo's default parser, then the native front's lenient one.
		fuzzRegister(t, data, func(b []byte) (sip.Message, error) { return sip.ParseMessage(b) })
		fuzzRegister(t, data, lenientParser.ParseSIP)
	})
}

func fuzzRegister(t *testing.T, data []byte, parse func([]byte) (sip.Message, error)) {
	msg, err := parse(data)
	if err != nil {
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	var panics atomic.Int32
	e := newEnv()
	e.hosting = len(data)%2 == 0
	e.dir.caps["acct-1"] = registrar.Capacities{Devices: 2}
	e.dir.accounts["hook.jambonz.org"] = &registrar.Account{SID: "acct-2", Realm: "hook.jambonz.org", Active: true,
		Hook: &registrar.Webhook{URL: "https://example.com/auth"}}
	e.dir.accounts["off.jambonz.org"] = &registrar.Account{SID: "acct-3", Active: false}
	e.store.put("bob@jambonz.org", "10.0.0.1:5060", time.Hour)
	e.store.put("alice@jambonz.org", phoneSource, time.Hour)
	e.webhook.grant = registrar.Grant{Status: 200, OK: true, Expires: 120, Headers: map[string]string{"X-A": "b"}}
	e.clients.grant = registrar.Grant{Status: 200, OK: len(data)%3 != 0, Blacklist: len(data)%5 == 0}
	e.reg = registrar.New(registrar.Deps{
		Store: e.store, Directory: e.dir, Webhook: e.webhook, Clients: e.clients, Alerter: e.alerts,
		Log: slog.New(panicSpotter{&panics}), Hosting: e.hosting, Now: e.now(),
	})

	serve := func(r *sip.Request) *sipfront.Response {
		w := &recWriter{}
		e.reg.ServeSIP(context.Background(), w, &sipfront.Request{
			Msg: r, Source: netip.MustParseAddrPort(phoneSource), Transport: "udp", SBCAddress: sbcAddress,
		})
		if len(w.res) != 1 {
			t.Fatalf("%d responses, want exactly 1", len(w.res))
		}
		res := w.res[0]
		if res.Code < 200 || res.Code > 699 {
			t.Fatalf("response code %d", res.Code)
		}
		if panics.Load() != 0 {
			t.Fatalf("the registrar panicked (recovered) on\n%q", data)
		}
		for _, h := range res.Headers {
			if strings.ContainsAny(h.Name+h.Value, "\r\n") {
				t.Fatalf("response header %q: %q breaks the message", h.Name, h.Value)
			}
		}
		if res.Code == 200 {
			if _, err := strconv.Atoi(res.Get("Expires")); err != nil {
				t.Fatalf("200 with Expires %q", res.Get("Expires"))
			}
		}
		return res
	}

	res := serve(req)
	if res.Code != 401 || req.GetHeader("Authorization") == nil {
		return
	}
	m := nonceRE.FindStringSubmatch(res.Get("WWW-Authenticate"))
	if m == nil {
		t.Fatalf("401 without a nonce: %v", res.Headers)
	}
	replay := fuzzNonceRE.ReplaceAll(data, []byte(`${1}"`+m[1]+`"`))
	msg2, err := parse(replay)
	if err != nil {
		return
	}
	if req2, ok := msg2.(*sip.Request); ok {
		serve(req2)
	}
}
