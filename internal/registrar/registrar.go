// Package registrar answers inbound REGISTER requests.
//
// A request flows through a chain of small stages: our admission check, then
// the order of the original sbc-sip-sidecar (docs/contract.md#sip-answers):
//
//	admit -> rejectIPv4 -> parse -> cache -> account -> deviceLimit -> challenge -> authenticate -> bind
//
// Each stage either answers or passes the typed Registration on. The chain
// knows nothing of how SIP arrived (sipfront) or where data lives: it consumes
// the Store, Directory and Authenticator interfaces declared here and alerts.Alerter.
package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// DefaultMaxExpires is the longest binding granted when Deps.MaxExpires is
// not set: the original's default expires.
const DefaultMaxExpires = 3600

// NATExpires is the expires answered to UDP clients (NAT keepalive) and to
// cached re-registers, in seconds.
const NATExpires = 30

// Binding is what the cluster knows of a registered device; its JSON is the
// `user:<aor>` value other jambonz programs read (docs/contract.md#the-binding-useraor).
// The stores write and read it with store.EncodeBinding and DecodeBinding,
// not reflection: a field added here is added there too (a test says so).
type Binding struct {
	Contact                 string `json:"contact"`
	SBCAddress              string `json:"sbcAddress"`
	PrivateSBCAddress       string `json:"privateSbcAddress,omitempty"`
	Protocol                string `json:"protocol"`
	Proxy                   string `json:"proxy"`
	CallHook                string `json:"callHook,omitempty"`
	CallStatusHook          string `json:"callStatusHook,omitempty"`
	AllowDirectAppCalling   bool   `json:"allow_direct_app_calling"`
	AllowDirectQueueCalling bool   `json:"allow_direct_queue_calling"`
	AllowDirectUserCalling  bool   `json:"allow_direct_user_calling"`
	ExpiryTime              int64  `json:"expiryTime"` // ms since epoch
	// CallID and CSeq are the REGISTER that wrote the binding, for the
	// ordering rule of RFC 3261 §10.3 (fields of our own: the original's
	// readers ignore them).
	CallID string `json:"callId,omitempty"`
	CSeq   uint32 `json:"cseq,omitempty"`
}

// Store keeps the bindings (Redis in a cluster).
type Store interface {
	// Binding returns the binding of aor, nil when there is none.
	Binding(ctx context.Context, aor string) (*Binding, error)
	// Bind stores b for aor for the given time (replacing any binding).
	Bind(ctx context.Context, aor string, b Binding, ttl time.Duration) error
	// Unbind removes the binding of aor.
	Unbind(ctx context.Context, aor string) error
	// CountRealm returns how many unexpired bindings the realm has.
	CountRealm(ctx context.Context, realm string) (int, error)
}

// EventStore is optional on a Store: Bind and Unbind that also send an
// event's commands in the same round trip (redisstore: pipelined after the
// binding's script). The binding's error is returned; the event's failure
// is left in ev.Err and never fails the binding. A nil ev is a plain Bind
// or Unbind.
type EventStore interface {
	BindWith(ctx context.Context, aor string, b Binding, ttl time.Duration, ev *events.Inline) error
	UnbindWith(ctx context.Context, aor string, ev *events.Inline) error
}

// Lookup is what the cache stage reads: the binding of AoR and, when set,
// whether BanKey exists (the AoR's ban, offered by an AoRBanPrefetcher
// guard) and the claim of ClaimKey (SET NX with ClaimTTL: a nonce count's
// cluster-wide claim, offered by SplitNonces).
type Lookup struct {
	AoR      string
	BanKey   string
	ClaimKey string
	ClaimTTL time.Duration
}

// Looked is the answer to a Lookup.
type Looked struct {
	Binding *Binding // nil when there is none (or BindingErr)
	Banned  bool     // BanKey exists
	Claimed bool     // ClaimKey was free and is now set
	// BindingErr: the round trip was made (Banned and Claimed hold) but
	// the stored binding could not be read.
	BindingErr error
}

// CombinedStore is optional on a Store: a Lookup in one round trip
// (redisstore: GET, EXISTS and SET NX pipelined), sparing the request the
// ban's and the nonce claim's own round trips. Its error means the round
// trip failed (whether a claim was made is then unknown).
type CombinedStore interface {
	Lookup(ctx context.Context, l Lookup) (Looked, error)
}

// AoRBanPrefetcher is optional on a Guard (guard.Guard): the store key of
// an AoR's ban when AdmitAoR would read it, and the hand-over of the answer
// read elsewhere.
type AoRBanPrefetcher interface {
	AoRBanKey(aor string) (string, bool)
	AoRBanRead(aor string, banned bool)
}

// Account is the account owning a SIP realm.
type Account struct {
	SID                string
	ServiceProviderSID string
	Realm              string
	Active             bool
	WebhookSecret      string
	DeviceToCallRatio  int
	// Hook is the registration webhook; nil means the clients table.
	Hook *Webhook
}

// Webhook is an account's registration hook.
type Webhook struct {
	URL      string
	Method   string // GET or POST
	Username string
	Password string
}

// Capacities are an account's purchased quantities.
type Capacities struct {
	VoiceCallSessions int
	Devices           int
}

// DeviceLimit is voice_call_session x device_to_call_ratio + device.
func (c Capacities) DeviceLimit(ratio int) int { return c.VoiceCallSessions*ratio + c.Devices }

// Client is a row of the clients table.
type Client struct {
	Username                string
	Password                string // as stored: plain or encrypted JSON
	Active                  bool
	AllowDirectAppCalling   bool
	AllowDirectQueueCalling bool
	AllowDirectUserCalling  bool
}

// Directory looks accounts and clients up (MySQL in a cluster).
type Directory interface {
	// AccountByRealm returns the account whose sip_realm is realm, nil when none.
	AccountByRealm(ctx context.Context, realm string) (*Account, error)
	// Capacities returns the account's active subscription quantities.
	Capacities(ctx context.Context, accountSID string) (Capacities, error)
	// Client returns the client of the account with that username, nil when none.
	Client(ctx context.Context, accountSID, username string) (*Client, error)
}

// AuthRequest is what an Authenticator checks.
type AuthRequest struct {
	Account *Account
	Creds   *digest.Credentials
	Method  string
	Expires int
	Source  netip.AddrPort
	CallID  string
	Headers map[string]string // request headers, lower-case names
}

// Grant is an Authenticator's verdict.
type Grant struct {
	// Status is 200 (or 0) when the authenticator gave a verdict; anything
	// else is a webhook failure, answered 403 when in 400-499 (the hook
	// refused) and 503 with Retry-After otherwise: never passed through.
	Status         int
	OK             bool
	Msg            string
	Expires        int // 0: as requested
	CallHook       string
	CallStatusHook string
	Blacklist      bool
	Headers        map[string]string
	// AllowDirect* override the client's flags when the webhook gives them.
	AllowDirectAppCalling   *bool
	AllowDirectQueueCalling *bool
	AllowDirectUserCalling  *bool
	// AllowUserMismatch lets the authenticated username differ from the
	// AoR user (webhook answer `allow_username_mismatch: true`).
	AllowUserMismatch bool
	// Client is set when the clients table was consulted.
	Client *Client
}

// Authenticator checks digest credentials. An error wrapping ErrAuthBusy
// says it refused to run now (a bound on its calls in flight); any other
// error, that it failed. Both are answered 503 Retry-After.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (Grant, error)
}

// ErrAuthBusy is wrapped by an Authenticator's error when it declined the
// request to stay within its bound of calls in flight: load shed on
// purpose, logged as a warning, not as a failure.
var ErrAuthBusy = errors.New("too many calls in flight")

// Nonces issues and checks digest nonces.
type Nonces interface {
	Issue() string
	Check(nonce string) nonce.Verdict
	// Claim marks (nonce, nc) used, atomically, before any authentication
	// work: of concurrent copies of one Authorization exactly one gets nil,
	// the others an error wrapping nonce.ErrReplay. A claimed count stays
	// used whatever the verdict. An error wrapping nonce.ErrShared means the
	// claim could not be made cluster-wide (the request is not served).
	Claim(ctx context.Context, nonce, nc string) error
}

// SplitNonces is optional on Nonces (nonce.Issuer): Claim in two parts, so
// that the cluster-wide claim (SET key NX, SharedTTL) rides on the cache
// stage's round trip. ClaimLocal claims on this instance and gives the key
// ("" when claims are per process); ClaimShared makes the cluster-wide
// claim when the Lookup could not carry it.
type SplitNonces interface {
	ClaimLocal(nonce, nc string) (string, error)
	ClaimShared(ctx context.Context, key string) error
	SharedTTL() time.Duration
}

// Guard refuses abusive sources before any database or webhook work.
type Guard interface {
	Admit(ctx context.Context, src netip.Addr, userAgent string) guard.Verdict
	AdmitAoR(ctx context.Context, aor string) bool
	AuthFailed(ctx context.Context, src netip.Addr, aor string)
	Blacklist(ctx context.Context, src netip.Addr)
	Drop() bool
}

// Registration is the state of one REGISTER as it flows through the chain.
type Registration struct {
	Req *sipfront.Request

	AoR   string // user@realm
	User  string
	Realm string

	Contact       string // the Contact URI
	ContactHeader string // the Contact header value as received
	Expires       int    // requested, seconds
	Unregister    bool

	Account *Account
	// Creds are the credentials once challenge accepted them (nonce valid,
	// count claimed); auth is how the credentials stage judged them.
	Creds *digest.Credentials
	auth  authState
	Grant Grant

	// Cached is set when answered from a cached binding.
	Cached bool
	// existing is set when the AoR already has a binding (it may refresh
	// even when the realm is at its device limit); prev is that binding.
	existing bool
	prev     *Binding
	// event and eventReason mark a refusal that is an event; granted and
	// bindingExpiry are what bind wrote (docs/events.md).
	event         events.Type
	eventReason   string
	granted       int
	bindingExpiry int64
	// inline is the event the binding's round trip carried (EventStore).
	inline *events.Inline
	// Log carries the request-scoped fields.
	Log *slog.Logger
}

// Handler answers a registration.
type Handler interface {
	Handle(ctx context.Context, r *Registration) *sipfront.Response
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Registration) *sipfront.Response

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, r *Registration) *sipfront.Response {
	return f(ctx, r)
}

// Stage is one step of the chain: it answers, or calls next.
type Stage interface {
	Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response
}

// Chain composes stages in order in front of final.
func Chain(final Handler, stages ...Stage) Handler {
	h := final
	for i := len(stages) - 1; i >= 0; i-- {
		s, next := stages[i], h
		h = HandlerFunc(func(ctx context.Context, r *Registration) *sipfront.Response {
			return s.Serve(ctx, r, next)
		})
	}
	return h
}

// Deps are the registrar's collaborators.
type Deps struct {
	Store     Store
	Directory Directory
	// Webhook authenticates accounts with a registration hook, Clients
	// those without.
	Webhook Authenticator
	Clients Authenticator
	Alerter alerts.Alerter
	// Nonces defaults to a per-process issuer with a 300 s lifetime.
	Nonces Nonces
	// Guard defaults to one that admits everything.
	Guard Guard
	// Algorithms are the digest algorithms offered in a challenge, one
	// WWW-Authenticate each, in order of preference; default MD5 alone (the
	// original's challenge: many clients give up on a second one).
	Algorithms []string
	Log        *slog.Logger
	// Hosting enables JAMBONES_HOSTING behaviour.
	Hosting bool
	// MaxExpires caps the lifetime granted to a binding, in seconds
	// (REGISTER_MAX_EXPIRES); 0 means DefaultMaxExpires. A webhook's
	// expires can only lower it further.
	MaxExpires int
	// MinExpires, when above 0, answers a shorter requested lifetime with
	// 423 Interval Too Brief (REGISTER_MIN_EXPIRES).
	MinExpires int
	// Now is the clock (tests).
	Now func() time.Time
	// Observe, when set, is told the outcome of every REGISTER (metrics).
	Observe func(r *Registration, res *sipfront.Response, elapsed time.Duration)
	// Events, when set, is told each registration event (docs/events.md)
	// once the answer is sent; it must not block.
	Events events.Publisher
}

// Registrar is the REGISTER handler for a SIP front.
type Registrar struct {
	chain Handler
	deps  Deps
}

// New builds the registrar chain.
func New(d Deps) *Registrar {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Alerter == nil {
		d.Alerter = alerts.Discard{}
	}
	if d.MaxExpires <= 0 {
		d.MaxExpires = DefaultMaxExpires
	}
	if d.Nonces == nil {
		d.Nonces = nonce.New("", 300*time.Second, 0)
	}
	if len(d.Algorithms) == 0 {
		d.Algorithms = []string{"MD5"}
	}
	if d.Guard == nil {
		d.Guard = guard.New(guard.Config{}, nil, d.Log)
	}
	chain := Chain(bind{d},
		admit{d},
		rejectIPv4{},
		parse{d},
		credentials{d},
		cache{d},
		account{d},
		deviceLimit{d},
		challenge{d},
		authenticate{d},
	)
	return &Registrar{chain: chain, deps: d}
}

// ServeSIP implements sipfront.Handler.
func (g *Registrar) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, req *sipfront.Request) {
	start := g.deps.Now()
	reg := &Registration{
		Req: req,
		// WithAttrs on the handler spares Logger.With's argument conversion.
		Log: slog.New(g.deps.Log.Handler().WithAttrs([]slog.Attr{
			slog.String("call_id", req.CallID()), slog.String("source", req.Source.String()), slog.String("transport", req.Transport)})),
	}
	res := g.run(ctx, reg)
	if err := w.Respond(ctx, res); err != nil {
		reg.Log.Warn("register: sending response failed", "status", res.Code, "err", err)
	}
	if g.deps.Observe != nil {
		g.deps.Observe(reg, res, g.deps.Now().Sub(start))
	}
	g.publish(reg, res)
}

func (g *Registrar) run(ctx context.Context, reg *Registration) (res *sipfront.Response) {
	defer func() {
		if p := recover(); p != nil {
			reg.Log.Error("register: panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res = &sipfront.Response{Code: 500}
		}
	}()
	res = g.chain.Handle(ctx, reg)
	if res == nil {
		reg.Log.Error("register: chain returned no answer")
		res = &sipfront.Response{Code: 500}
	}
	return res
}

func reply(code int, headers ...sipfront.Header) *sipfront.Response {
	return &sipfront.Response{Code: code, Headers: headers}
}

func xReason(text string) sipfront.Header { return sipfront.Header{Name: "X-Reason", Value: text} }
