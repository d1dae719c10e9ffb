package registrar

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// X-Reason texts of the original.
const (
	ReasonContactRequired = "Contact header is required for REGISTER requests"
	ReasonInvalidAoR      = "Invalid address of record"
	ReasonDeactivated     = "Account has been deactivated"
	ReasonUnknownRealm    = "Unknown or invalid realm"
	ReasonBadCredentials  = "Invalid credentials"
	ReasonMaxDevices      = "Max Devices Registered"
	ReasonUserMismatch    = "Authenticated user does not match the address of record"
	ReasonRealmMismatch   = "Credentials are not for this realm"
	ReasonHookRefused     = "Registration webhook refused the request"
	ReasonOutOfOrder      = "CSeq not higher than the registration's"
)

// admit applies the guard (scanner User-Agents, per-IP rate limit, bans)
// before anything else costs a lookup.
type admit struct{ d Deps }

func (a admit) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	switch v := a.d.Guard.Admit(ctx, r.Req.Source.Addr(), r.Req.Header("User-Agent")); v {
	case guard.Allow:
		return next.Handle(ctx, r)
	case guard.Limit:
		r.Log.Debug("register: refused by guard", "verdict", v.String())
		return a.refuse(503, sipfront.Header{Name: "Retry-After", Value: "5"})
	default:
		r.Log.Info("register: refused by guard", "verdict", v.String(), "user_agent", clip(r.Req.Header("User-Agent")))
		return a.refuse(403)
	}
}

func (a admit) refuse(code int, headers ...sipfront.Header) *sipfront.Response {
	if a.d.Guard.Drop() {
		return &sipfront.Response{Code: sipfront.NoAnswer}
	}
	return reply(code, headers...)
}

// rejectIPv4 refuses REGISTERs whose Request-URI host is an IPv4 literal:
// a SIP realm is required to find the account.
type rejectIPv4 struct{}

func (rejectIPv4) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	host := r.Req.Msg.Recipient.Host
	if host == "" || isIPv4(host) {
		r.Log.Info("register: rejecting, Request-URI host is not a realm", "ruri_host", host)
		return reply(403)
	}
	return next.Handle(ctx, r)
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// parse checks the mandatory headers and extracts Contact, expires and AoR.
type parse struct{ d Deps }

// maxExpires bounds requested expires (RFC 3261 allows 2^32-1; Redis TTLs and
// the ms expiryTime must not overflow).
const maxExpires = 1<<31 - 1

func (p parse) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	msg := r.Req.Msg
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		if msg.GetHeader(name) == nil {
			r.Log.Info("register: missing header", "header", name)
			return reply(400, xReason("Missing "+name+" header"))
		}
	}
	contacts := sipfront.HeadersNamed(msg, "Contact")
	if len(contacts) == 0 {
		r.Log.Info("register: no Contact header")
		return reply(400, xReason(ReasonContactRequired))
	}
	contact, ok := contacts[0].(*sip.ContactHeader)
	if !ok {
		r.Log.Info("register: unparseable Contact header", "contact", clip(contacts[0].Value()))
		return reply(400, xReason("Invalid Contact header"))
	}
	r.ContactHeader = contact.Value()

	expires, ok, err := requestedExpires(msg, contact)
	if err != nil || !ok {
		r.Log.Info("register: no usable expires", "err", err)
		return reply(400, xReason("Missing or invalid expires"))
	}
	r.Expires = expires
	r.Unregister = expires == 0
	if floor := p.d.MinExpires; floor > 0 && !r.Unregister && expires < floor {
		// RFC 3261 §10.3 step 7.
		r.Log.Info("register: expires below the minimum", "expires", expires, "min_expires", floor)
		return &sipfront.Response{Code: 423, Reason: "Interval Too Brief",
			Headers: []sipfront.Header{{Name: "Min-Expires", Value: strconv.Itoa(floor)}}}
	}
	if contact.Address.Wildcard {
		if !r.Unregister || len(contacts) > 1 {
			return reply(400, xReason("Contact * is only allowed alone with Expires: 0"))
		}
		r.Contact = "*"
	} else {
		r.Contact = contact.Address.String()
	}

	to := msg.To()
	if to == nil || to.Address.User == "" || !validHost(to.Address.Host) {
		r.Log.Info("register: invalid address of record", "to", clip(msg.GetHeader("To").Value()))
		return reply(403, xReason(ReasonInvalidAoR))
	}
	r.User = to.Address.User
	r.Realm = to.Address.Host
	r.AoR = r.User + "@" + r.Realm
	r.Log = r.Log.With("aor", r.AoR)
	return next.Handle(ctx, r)
}

// requestedExpires reads the Contact expires parameter, else the Expires header.
func requestedExpires(msg *sip.Request, contact *sip.ContactHeader) (int, bool, error) {
	if v, ok := contact.Params.Get("expires"); ok {
		n, err := parseExpires(v)
		return n, err == nil, err
	}
	if h := msg.GetHeader("Expires"); h != nil {
		n, err := parseExpires(h.Value())
		return n, err == nil, err
	}
	return 0, false, nil
}

func parseExpires(v string) (int, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, errors.New("expires is not a non-negative integer")
	}
	if n > maxExpires {
		n = maxExpires
	}
	return int(n), nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		return err == nil && a.Is6()
	}
	return isHostname(h)
}

// isHostname reports whether h is dot-separated labels of letters, digits
// and inner hyphens (an IPv4 address is one too), with at most one
// trailing dot. Checked byte by byte: a regexp here was 1% of the CPU of
// a registration (TestIsHostname_AsTheRegexp, FuzzIsHostname hold it to
// the expression it replaced).
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		n := len(label)
		if n == 0 || !isAlnum(label[0]) || !isAlnum(label[n-1]) {
			return false
		}
		for i := 1; i < n-1; i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// cache answers a re-register of the same Contact from the same source
// without authentication while the stored binding has more than NATExpires
// seconds left.
type cache struct{ d Deps }

func (c cache) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	b, err := c.lookup(ctx, r)
	if errors.Is(err, breaker.ErrUnavailable) {
		// The store is down: the binding could not be written either.
		r.Log.Debug("register: store unavailable", "err", err)
		return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
	}
	if err != nil {
		// Not fatal: the full path can still authenticate, and will fail
		// at bind time if the store is really down.
		r.Log.Warn("register: reading cached binding failed", "err", err)
		return next.Handle(ctx, r)
	}
	if b == nil {
		return next.Handle(ctx, r)
	}
	r.existing, r.prev = true, b
	if r.Unregister {
		return next.Handle(ctx, r)
	}
	// Only a refresh of the very same binding is answered from cache: a new
	// Contact must authenticate, or the 200 would confirm a binding that is
	// not the stored one.
	if b.Proxy != proxyOf(r.Req.Source) || b.Contact != r.Contact {
		return next.Handle(ctx, r)
	}
	if c.d.Now().Add(NATExpires*time.Second).UnixMilli() >= b.ExpiryTime {
		r.Log.Debug("register: cached binding about to expire, authenticating")
		return next.Handle(ctx, r)
	}
	r.Cached = true
	r.Log.Debug("register: answered from cache")
	return reply(200,
		sipfront.Header{Name: "Contact", Value: withExpires(r.ContactHeader, NATExpires)},
		sipfront.Header{Name: "Expires", Value: strconv.Itoa(NATExpires)})
}

// lookup reads the binding. When the request carries credentials (it will
// reach authenticate) and the store can combine reads, the same round trip
// reads the AoR's ban for the guard and makes the nonce count's
// cluster-wide claim for challenge. A store error leaves both to their own
// round trips later (the guard reads the ban, challenge claims).
func (c cache) lookup(ctx context.Context, r *Registration) (*Binding, error) {
	cs, ok := c.d.Store.(CombinedStore)
	if !ok || r.auth.verdict == credNone {
		return c.d.Store.Binding(ctx, r.AoR)
	}
	l := Lookup{AoR: r.AoR}
	pf, _ := c.d.Guard.(AoRBanPrefetcher)
	if pf != nil {
		l.BanKey, _ = pf.AoRBanKey(r.AoR)
	}
	if r.auth.claim == claimPending {
		l.ClaimKey, l.ClaimTTL = r.auth.claimKey, c.d.Nonces.(SplitNonces).SharedTTL()
	}
	if l.BanKey == "" && l.ClaimKey == "" {
		return c.d.Store.Binding(ctx, r.AoR)
	}
	res, err := cs.Lookup(ctx, l)
	if err != nil {
		return nil, err
	}
	if l.BanKey != "" {
		pf.AoRBanRead(r.AoR, res.Banned)
	}
	if l.ClaimKey != "" {
		r.auth.tookClaim(res.Claimed)
	}
	return res.Binding, res.BindingErr
}

func proxyOf(src netip.AddrPort) string { return "sip:" + src.String() }

// expiresParamRE is what withExpires replaces; it runs only on Contacts
// with non-ASCII bytes, where case folding goes beyond ASCII.
var expiresParamRE = regexp.MustCompile(`(?i)expires=\d+`)

// withExpires rewrites (or adds) the expires parameter of a Contact value:
// every "expires=<digits>" (any case) becomes "expires=<expires>", as
// expiresParamRE's replacement does, without its cost on every answer
// (TestWithExpires_SameAsRegexp and FuzzWithExpires hold it to that).
func withExpires(contact string, expires int) string {
	const param = "expires="
	for i := 0; i < len(contact); i++ {
		if contact[i] >= utf8.RuneSelf {
			if expiresParamRE.MatchString(contact) {
				return expiresParamRE.ReplaceAllString(contact, param+strconv.Itoa(expires))
			}
			return contact + ";" + param + strconv.Itoa(expires)
		}
	}
	var b []byte
	start := 0
	for i := 0; i+len(param) < len(contact); i++ {
		if !strings.EqualFold(contact[i:i+len(param)], param) {
			continue
		}
		j := i + len(param)
		for j < len(contact) && contact[j] >= '0' && contact[j] <= '9' {
			j++
		}
		if j == i+len(param) {
			continue
		}
		if b == nil {
			b = make([]byte, 0, len(contact)+8)
		}
		b = append(b, contact[start:i]...)
		b = append(b, param...)
		b = strconv.AppendInt(b, int64(expires), 10)
		start, i = j, j-1
	}
	if b == nil {
		return contact + ";expires=" + strconv.Itoa(expires)
	}
	return string(append(b, contact[start:]...))
}

// account finds the account of the realm (with the parent-domain fallback)
// and refuses deactivated or unknown ones.
type account struct{ d Deps }

func (a account) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	acct, err := LookupAccount(ctx, a.d.Directory, r.Realm)
	if err != nil {
		r.Log.Error("register: account lookup failed", "realm", r.Realm, "err", err)
		return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
	}
	switch {
	case acct != nil && !acct.Active:
		r.Log.Info("register: account deactivated", "account_sid", acct.SID)
		r.Account = acct
		r.failed(events.Rejected, ReasonDeactivated)
		return reply(403, xReason(ReasonDeactivated))
	case acct == nil && a.d.Hosting:
		r.Log.Info("register: unknown realm", "realm", r.Realm)
		return reply(403)
	case acct == nil:
		r.Log.Info("register: unknown realm", "realm", r.Realm)
		return reply(403, xReason(ReasonUnknownRealm))
	}
	r.Account = acct
	r.Log = r.Log.With("account_sid", acct.SID)
	return next.Handle(ctx, r)
}

// LookupAccount finds the account of realm; when there is none and the realm
// has more than two labels, it retries once with the first label removed
// (sub.customer.example.com -> customer.example.com).
func LookupAccount(ctx context.Context, dir Directory, realm string) (*Account, error) {
	acct, err := dir.AccountByRealm(ctx, realm)
	if err != nil || acct != nil {
		return acct, err
	}
	labels := strings.Split(strings.TrimSuffix(realm, "."), ".")
	if len(labels) > 2 {
		return dir.AccountByRealm(ctx, strings.Join(labels[1:], "."))
	}
	return nil, nil
}

// deviceLimit enforces the account's device limit on the hosted platform.
// A device already bound may always refresh; a new one is refused when the
// realm already has as many bindings as the limit.
type deviceLimit struct{ d Deps }

func (l deviceLimit) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	if !l.d.Hosting || r.Unregister {
		return next.Handle(ctx, r)
	}
	acct := r.Account
	caps, err := l.d.Directory.Capacities(ctx, acct.SID)
	if err != nil {
		// As the original: a database we cannot reach does not block phones.
		r.Log.Error("register: reading capacities failed, not enforcing the limit", "err", err)
		return next.Handle(ctx, r)
	}
	limit := caps.DeviceLimit(acct.DeviceToCallRatio)
	if limit <= 0 {
		r.Log.Info("register: device calling not allowed for this account")
		l.alert(ctx, acct, 0)
		r.failed(events.Rejected, ReasonMaxDevices)
		return &sipfront.Response{Code: 503, Reason: ReasonMaxDevices}
	}
	if r.existing {
		return next.Handle(ctx, r)
	}
	count, err := l.d.Store.CountRealm(ctx, r.Realm)
	if err != nil {
		r.Log.Error("register: counting devices failed", "err", err)
		return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
	}
	if count >= limit {
		r.Log.Info("register: device limit reached", "devices", count, "limit", limit)
		l.alert(ctx, acct, limit)
		r.failed(events.Rejected, ReasonMaxDevices)
		return &sipfront.Response{Code: 503, Reason: ReasonMaxDevices}
	}
	return next.Handle(ctx, r)
}

func (l deviceLimit) alert(ctx context.Context, acct *Account, limit int) {
	l.d.Alerter.Alert(ctx, alerts.Alert{
		Type:               alerts.AccountDeviceLimit,
		AccountSID:         acct.SID,
		ServiceProviderSID: acct.ServiceProviderSID,
		Message:            "Device limit reached: " + strconv.Itoa(limit) + " registered devices allowed",
		Detail:             strconv.Itoa(limit),
	})
}

// challenge answers 401 to requests without usable credentials: none, a
// nonce we did not issue, a stale one (stale=true) or a nonce count already
// claimed, and 403 to credentials of another realm. It claims the nonce
// count before any webhook call, so a replay never reaches the customer.
type challenge struct{ d Deps }

func (c challenge) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	a := &r.auth
	switch a.verdict {
	case credNone:
		return c.challenge(r, false)
	case credMalformed:
		r.Log.Info("register: bad Authorization header", "err", a.parseErr)
		return reply(400, xReason("Malformed Authorization header"))
	case credNotOffered:
		r.Log.Info("register: digest algorithm not offered", "algorithm", clip(a.creds.Algorithm))
		return c.challenge(r, false)
	case credInvalid:
		r.Log.Info("register: nonce not issued here, challenging again")
		return c.challenge(r, false)
	case credStale:
		r.Log.Debug("register: stale nonce")
		return c.challenge(r, true)
	case credOtherRealm:
		r.Log.Warn("register: digest realm differs from the challenged realm",
			"digest_realm", clip(a.creds.Realm), "username", clip(a.creds.Username))
		c.d.Guard.AuthFailed(ctx, r.Req.Source.Addr(), r.AoR)
		r.failed(events.AuthFailed, ReasonRealmMismatch)
		return reply(403, xReason(ReasonRealmMismatch))
	}
	// Claimed before any authentication work: a copy of this Authorization
	// sent while the original is at the webhook is refused here.
	if err := c.finishClaim(ctx, r); err != nil {
		if errors.Is(err, nonce.ErrShared) {
			r.Log.Error("register: claiming the nonce count failed", "err", err)
			return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
		}
		r.Log.Warn("register: replayed credentials refused", "username", clip(a.creds.Username), "nc", clip(a.creds.NC), "err", err)
		res := c.challenge(r, false)
		res.Headers = append(res.Headers, xReason("Nonce count reused"))
		return res
	}
	r.Creds = a.creds
	return next.Handle(ctx, r)
}

// offered reports whether alg (empty means MD5) is one of the algorithms we
// challenge with.
func offered(algorithms []string, alg string) bool {
	if alg == "" {
		alg = "MD5"
	}
	for _, a := range algorithms {
		if strings.EqualFold(a, alg) {
			return digest.Supported(a)
		}
	}
	return false
}

// challenge offers the configured algorithms, one WWW-Authenticate each
// (RFC 8760), in order of preference. The default is one MD5 challenge, the
// original's: libre (baresip) aborts on any non-MD5 challenge and JsSIP
// picks SHA-256 and gives up (docs/security.md).
func (c challenge) challenge(r *Registration, stale bool) *sipfront.Response {
	n := c.d.Nonces.Issue()
	res := reply(401)
	for _, alg := range c.d.Algorithms {
		ch := digest.Challenge{Realm: r.Realm, Nonce: n, Algorithm: alg, Stale: stale}
		res.Headers = append(res.Headers, sipfront.Header{Name: "WWW-Authenticate", Value: ch.String()})
	}
	return res
}

// authenticate checks the credentials through the account's webhook, or the
// clients table when it has none.
type authenticate struct{ d Deps }

func (a authenticate) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	if !a.d.Guard.AdmitAoR(ctx, r.AoR) {
		r.Log.Info("register: AoR temporarily banned after failed authentications")
		r.failed(events.Rejected, "Too many failed authentications")
		if a.d.Guard.Drop() {
			return &sipfront.Response{Code: sipfront.NoAnswer}
		}
		return reply(403, xReason("Too many failed authentications"))
	}
	auth, via := a.d.Clients, "clients"
	if r.Account.Hook != nil && r.Account.Hook.URL != "" {
		auth, via = a.d.Webhook, "webhook"
	}
	grant, err := auth.Authenticate(ctx, AuthRequest{
		Account: r.Account,
		Creds:   r.Creds,
		Method:  string(r.Req.Msg.Method),
		Expires: r.Expires,
		Source:  r.Req.Source,
		CallID:  r.Req.CallID(),
		Headers: lowerHeaders(r.Req.Msg),
	})
	if err != nil {
		if errors.Is(err, ErrAuthBusy) {
			r.Log.Warn("register: authentication declined, busy", "via", via, "err", err)
		} else {
			r.Log.Error("register: authentication failed to run", "via", via, "err", err)
		}
		return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
	}
	if grant.Status != 0 && grant.Status != 200 {
		return a.hookFailed(ctx, r, via, grant.Status)
	}
	if !grant.OK {
		src := r.Req.Source.Addr()
		a.d.Guard.AuthFailed(ctx, src, r.AoR)
		if grant.Blacklist {
			a.d.Guard.Blacklist(ctx, src)
		}
		reason := ReasonBadCredentials
		if grant.Blacklist {
			reason = "detected potential spammer from " + r.Req.Source.Addr().String() + ":" + strconv.Itoa(int(r.Req.Source.Port()))
		}
		r.failed(events.AuthFailed, reason)
		// "msg" would override the log event's own message.
		r.Log.Info("register: authentication refused", "via", via, "username", r.Creds.Username, "webhook_msg", clip(grant.Msg))
		// The hook's headers come in a stable order, and its X-Reason
		// replaces ours (as the original's header merge did).
		res := reply(403)
		if _, ok := headerValue(grant.Headers, "X-Reason"); !ok {
			res.Headers = append(res.Headers, xReason(reason))
		}
		names := make([]string, 0, len(grant.Headers))
		for k := range grant.Headers {
			if !hookHeaderAllowed(k) {
				r.Log.Debug("register: webhook answer header dropped", "header", clip(k))
				continue
			}
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			res.Headers = append(res.Headers, sipfront.Header{Name: k, Value: grant.Headers[k]})
		}
		return res
	}
	// A valid user of the realm must not bind somebody else's AoR unless
	// the customer's webhook says so.
	if r.Creds.Username != r.User && !grant.AllowUserMismatch {
		r.Log.Warn("register: authenticated user does not match the AoR", "username", r.Creds.Username)
		a.d.Guard.AuthFailed(ctx, r.Req.Source.Addr(), r.AoR)
		r.failed(events.Rejected, ReasonUserMismatch)
		return reply(403, xReason(ReasonUserMismatch))
	}
	r.Grant = grant
	return next.Handle(ctx, r)
}

// hookFailed answers a webhook that did not give a verdict. Its HTTP code
// never passes through (a 401 would lack WWW-Authenticate, a 6xx would end
// the phone's attempts): a refusal (4xx) is a 403, anything else a 503
// with Retry-After. It counts as a failure of the source, so a flood
// against a slow webhook gets banned like a password guesser; not of the
// AoR, whose owner did nothing wrong (docs/security.md).
func (a authenticate) hookFailed(ctx context.Context, r *Registration, via string, status int) *sipfront.Response {
	a.d.Guard.AuthFailed(ctx, r.Req.Source.Addr(), "")
	if status >= 400 && status <= 499 {
		r.Log.Info("register: authentication refused by the webhook", "via", via, "status", status)
		r.failed(events.Rejected, ReasonHookRefused)
		return reply(403, xReason(ReasonHookRefused))
	}
	r.Log.Warn("register: authentication unavailable", "via", via, "status", status)
	return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
}

// lowerHeaders gives the request headers as an object with lower-case names
// (what drachtio-srf's req.headers holds and the webhook body carries).
func lowerHeaders(msg *sip.Request) map[string]string {
	hs := msg.Headers()
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		k := lowerName(h.Name())
		if prev, ok := out[k]; ok {
			out[k] = prev + "," + h.Value()
			continue
		}
		out[k] = h.Value()
	}
	return out
}

// lowerName lower-cases a header name, without allocating for the names a
// REGISTER usually carries.
func lowerName(n string) string {
	switch n {
	case "User-Agent":
		return "user-agent"
	case "Expires":
		return "expires"
	case "Authorization":
		return "authorization"
	case "Allow":
		return "allow"
	case "Supported":
		return "supported"
	case "Max-Forwards":
		return "max-forwards"
	}
	return strings.ToLower(sip.HeaderToLower(n))
}

// bind stores (or removes) the binding and answers 200.
type bind struct{ d Deps }

func (b bind) Handle(ctx context.Context, r *Registration) *sipfront.Response {
	var seq uint32
	if h := r.Req.Msg.CSeq(); h != nil {
		seq = h.SeqNo
	}
	// RFC 3261 §10.3 step 7: a REGISTER of the call that wrote the binding
	// must come with a higher CSeq, else it is out of order (a delayed
	// retransmission or a replay) and must not change the binding.
	if p := r.prev; p != nil && p.CallID != "" && p.CallID == r.Req.CallID() && seq <= p.CSeq {
		r.Log.Info("register: CSeq not higher than the binding's, refused", "cseq", seq, "binding_cseq", p.CSeq)
		return reply(500, xReason(ReasonOutOfOrder))
	}
	if r.Unregister {
		var err error
		if es, ev := inlineEvent(b.d, r, 0, 0); ev != nil {
			err = es.UnbindWith(ctx, r.AoR, ev)
			if err == nil {
				r.inline = ev
			}
		} else {
			err = b.d.Store.Unbind(ctx, r.AoR)
		}
		if err != nil {
			r.Log.Error("register: removing binding failed", "err", err)
			return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
		}
		r.Log.Info("register: unregistered", logging.Unlimited)
		return reply(200,
			sipfront.Header{Name: "Contact", Value: r.ContactHeader},
			sipfront.Header{Name: "Expires", Value: "0"})
	}

	granted := min(r.Expires, b.d.MaxExpires)
	if g := r.Grant.Expires; g > 0 && g < granted {
		granted = g
	}
	client := r.Grant.Client
	if client == nil {
		c, err := b.d.Directory.Client(ctx, r.Account.SID, r.User)
		if err != nil {
			r.Log.Warn("register: client lookup failed, direct calling flags default to false", "err", err)
		}
		client = c
	}
	binding := Binding{
		Contact:           r.Contact,
		SBCAddress:        r.Req.SBCAddress,
		PrivateSBCAddress: r.Req.PrivateSBCAddress,
		Protocol:          r.Req.Transport,
		Proxy:             proxyOf(r.Req.Source),
		CallHook:          r.Grant.CallHook,
		CallStatusHook:    r.Grant.CallStatusHook,
		ExpiryTime:        b.d.Now().Add(time.Duration(granted) * time.Second).UnixMilli(),
		CallID:            r.Req.CallID(),
		CSeq:              seq,
	}
	if client != nil {
		binding.AllowDirectAppCalling = client.AllowDirectAppCalling
		binding.AllowDirectQueueCalling = client.AllowDirectQueueCalling
		binding.AllowDirectUserCalling = client.AllowDirectUserCalling
	}
	override(&binding.AllowDirectAppCalling, r.Grant.AllowDirectAppCalling)
	override(&binding.AllowDirectQueueCalling, r.Grant.AllowDirectQueueCalling)
	override(&binding.AllowDirectUserCalling, r.Grant.AllowDirectUserCalling)
	var err error
	if es, ev := inlineEvent(b.d, r, granted, binding.ExpiryTime); ev != nil {
		err = es.BindWith(ctx, r.AoR, binding, time.Duration(granted)*time.Second, ev)
		if err == nil {
			r.inline = ev
		}
	} else {
		err = b.d.Store.Bind(ctx, r.AoR, binding, time.Duration(granted)*time.Second)
	}
	if err != nil {
		r.Log.Error("register: storing binding failed", "err", err)
		return reply(503, sipfront.Header{Name: "Retry-After", Value: "30"})
	}
	r.granted, r.bindingExpiry = granted, binding.ExpiryTime
	answered := granted
	// Over UDP the device is probably behind a NAT: make it refresh often
	// while Redis keeps the granted lifetime.
	if r.Req.Transport == "udp" && answered > NATExpires {
		answered = NATExpires
	}
	r.Log.Info("register: registered", "expires", granted, "answered_expires", answered, logging.Unlimited)
	return reply(200,
		sipfront.Header{Name: "Contact", Value: withExpires(r.ContactHeader, answered)},
		sipfront.Header{Name: "Expires", Value: strconv.Itoa(answered)})
}

func override(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func headerValue(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
