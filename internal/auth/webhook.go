// Package auth checks REGISTER credentials: through the account's HTTP
// registration webhook (docs/contract.md#registration-webhook) or against the clients table.
package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// maxAnswer bounds what is read of a webhook answer.
const maxAnswer = 64 << 10

// answerBufs holds buffers for reading answers (json.Unmarshal copies what
// it keeps); one grown by a large answer is not kept.
var answerBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

func putAnswerBuf(b *bytes.Buffer) {
	if b.Cap() <= 8<<10 {
		answerBufs.Put(b)
	}
}

// Webhook calls the account's registration hook.
type Webhook struct {
	client    *http.Client
	userAgent []string // the User-Agent header's value, nil when not configured
	alerter   alerts.Alerter
	log       *slog.Logger
	now       func() time.Time
	// Observe, when set, is told each call's duration and HTTP status (0 on
	// connection failure).
	Observe func(d time.Duration, status int)
	// inflight bounds the calls in flight per account (inflight.go).
	inflight *inFlight
}

// NewWebhook returns a webhook authenticator. timeout bounds each call;
// userAgent (JAMBONES_HTTP_USER_AGENT_HEADER) is sent when not empty.
func NewWebhook(timeout time.Duration, userAgent string, alerter alerts.Alerter, log *slog.Logger) *Webhook {
	return &Webhook{
		client: &http.Client{
			Timeout: timeout,
			// A registration hook that redirects is misconfigured; following
			// it would send credentials somewhere the account did not name.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
		},
		userAgent: headerValueOrNil(userAgent),
		alerter:   alerter,
		log:       log,
		now:       time.Now,
		inflight:  newInFlight(0),
	}
}

// applicationJSON is the value of the Content-Type and Accept headers,
// shared by every request (the transport only reads it).
var applicationJSON = []string{"application/json"}

func headerValueOrNil(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// Payload is the body sent to the hook (field names are the contract).
type Payload struct {
	SourceAddress string            `json:"source_address"`
	SourcePort    int               `json:"source_port"`
	Method        string            `json:"method"`
	Headers       map[string]string `json:"headers,omitempty"`
	Expires       int               `json:"expires"`
	Scheme        string            `json:"scheme"`
	Username      string            `json:"username"`
	Realm         string            `json:"realm"`
	Nonce         string            `json:"nonce"`
	URI           string            `json:"uri"`
	Algorithm     string            `json:"algorithm"`
	Response      string            `json:"response"`
	QOP           string            `json:"qop,omitempty"`
	NC            string            `json:"nc,omitempty"`
	CNonce        string            `json:"cnonce,omitempty"`
	Opaque        string            `json:"opaque,omitempty"`
}

// query encodes the payload for GET hooks (no headers, as the original).
func (p Payload) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("source_address", p.SourceAddress)
	q.Set("source_port", strconv.Itoa(p.SourcePort))
	set("method", p.Method)
	q.Set("expires", strconv.Itoa(p.Expires))
	set("scheme", p.Scheme)
	set("username", p.Username)
	set("realm", p.Realm)
	set("nonce", p.Nonce)
	set("uri", p.URI)
	set("algorithm", p.Algorithm)
	set("response", p.Response)
	set("qop", p.QOP)
	set("nc", p.NC)
	set("cnonce", p.CNonce)
	set("opaque", p.Opaque)
	return q
}

// Answer is the hook's JSON answer.
type Answer struct {
	Status                  string         `json:"status"`
	Msg                     string         `json:"msg"`
	Expires                 flexInt        `json:"expires"`
	CallHook                string         `json:"call_hook"`
	CallStatusHook          string         `json:"call_status_hook"`
	AllowDirectAppCalling   *bool          `json:"allow_direct_app_calling"`
	AllowDirectQueueCalling *bool          `json:"allow_direct_queue_calling"`
	AllowDirectUserCalling  *bool          `json:"allow_direct_user_calling"`
	Blacklist               bool           `json:"blacklist"`
	AllowUsernameMismatch   bool           `json:"allow_username_mismatch"`
	Headers                 map[string]any `json:"headers"`
}

// flexInt accepts a JSON number or a numeric string.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("expires: %w", err)
	}
	if n < 0 || n > 1<<31-1 {
		n = 0
	}
	*f = flexInt(n)
	return nil
}

// Sign returns the Jambonz-Signature header value for body at time t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
func Sign(secret string, t time.Time, body []byte) string {
	var buf [2 + 20 + 4 + 2*sha256.Size]byte
	b := append(buf[:0], "t="...)
	b = strconv.AppendInt(b, t.Unix(), 10)
	ts := len(b)
	b = append(b, '.')
	pool := macs.pool(secret)
	mac := pool.Get().(hash.Hash)
	mac.Write(b[2:])
	mac.Write(body)
	b = append(b[:ts], ",v1="...)
	var sum [sha256.Size]byte
	b = hex.AppendEncode(b, mac.Sum(sum[:0]))
	mac.Reset()
	pool.Put(mac)
	return string(b)
}

// macs keeps keyed HMAC-SHA256 states per webhook secret for reuse (Reset
// returns one to its keyed state): a new one costs two SHA-256 blocks of
// key setup and five allocations per signed call.
var macs = macCache{pools: map[string]*sync.Pool{}}

// maxMACSecrets bounds the secrets macCache keeps states for; beyond it the
// table starts over (secrets of accounts no longer signing are dropped).
const maxMACSecrets = 1024

type macCache struct {
	mu    sync.Mutex
	pools map[string]*sync.Pool
}

func (c *macCache) pool(secret string) *sync.Pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pools[secret]
	if p == nil {
		if len(c.pools) >= maxMACSecrets {
			c.pools = map[string]*sync.Pool{}
		}
		key := []byte(secret)
		p = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
		c.pools[secret] = p
	}
	return p
}

// getSignedBody is what the original signs for GET hooks: the JSON string "null".
var getSignedBody = []byte(`"null"`)

// Authenticate implements registrar.Authenticator.
func (w *Webhook) Authenticate(ctx context.Context, req registrar.AuthRequest) (registrar.Grant, error) {
	hook := req.Account.Hook
	slot := req.Account.SID
	if slot == "" {
		slot = hook.URL
	}
	if !w.inflight.acquire(slot) {
		return registrar.Grant{}, fmt.Errorf("account %s: %w", req.Account.SID, ErrWebhookBusy)
	}
	defer w.inflight.release(slot)
	c := req.Creds
	p := Payload{
		SourceAddress: req.Source.Addr().String(),
		SourcePort:    int(req.Source.Port()),
		Method:        req.Method,
		Expires:       req.Expires,
		Scheme:        "digest",
		Username:      c.Username,
		Realm:         c.Realm,
		Nonce:         c.Nonce,
		URI:           c.URI,
		Algorithm:     c.Algorithm,
		Response:      c.Response,
		QOP:           c.QOP,
		NC:            c.NC,
		CNonce:        c.CNonce,
		Opaque:        c.Opaque,
	}
	method := strings.ToUpper(hook.Method)
	if method != "GET" {
		method = "POST"
		p.Headers = req.Headers
	}

	var (
		httpReq *http.Request
		err     error
		signed  []byte
	)
	if method == "GET" {
		u, perr := url.Parse(hook.URL)
		if perr != nil {
			return w.connectionFailure(ctx, req, hook.URL, perr), nil
		}
		q := u.Query()
		for k, v := range p.query() {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		httpReq, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		signed = getSignedBody
	} else {
		// Not pooled: the transport may read the body again (GetBody) to
		// retry on a kept-alive connection the server had closed.
		body := p.appendJSON(make([]byte, 0, 1024))
		httpReq, err = http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
		signed = body
	}
	if err != nil {
		return w.connectionFailure(ctx, req, hook.URL, err), nil
	}
	// Canonical names set directly, with shared read-only values: Set would
	// canonicalise and allocate each of them on every call.
	h := httpReq.Header
	h["Content-Type"] = applicationJSON
	h["Accept"] = applicationJSON
	if hook.Username != "" && hook.Password != "" {
		httpReq.SetBasicAuth(hook.Username, hook.Password)
	}
	if req.Account.WebhookSecret != "" {
		h["Jambonz-Signature"] = []string{Sign(req.Account.WebhookSecret, w.now(), signed)}
	}
	if w.userAgent != nil {
		h["User-Agent"] = w.userAgent
	}

	start := time.Now()
	resp, err := w.client.Do(httpReq)
	if err != nil {
		w.observe(start, 0)
		return w.connectionFailure(ctx, req, hook.URL, err), nil
	}
	defer resp.Body.Close()
	w.observe(start, resp.StatusCode)
	buf := answerBufs.Get().(*bytes.Buffer)
	defer putAnswerBuf(buf)
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxAnswer+1))
	raw := buf.Bytes() // read to the end: the connection is reused
	if err != nil {
		return w.connectionFailure(ctx, req, hook.URL, err), nil
	}
	if resp.StatusCode != http.StatusOK {
		w.log.Info("webhook: non-200 answer", "url", redact(hook.URL), "status", resp.StatusCode)
		w.alerter.Alert(ctx, alerts.Alert{
			Type:               alerts.WebhookFailure,
			AccountSID:         req.Account.SID,
			ServiceProviderSID: req.Account.ServiceProviderSID,
			Message:            fmt.Sprintf("registration webhook %s answered %d", redact(hook.URL), resp.StatusCode),
			Detail:             strconv.Itoa(resp.StatusCode),
		})
		return registrar.Grant{Status: sipStatusFor(resp.StatusCode)}, nil
	}
	if len(raw) > maxAnswer {
		w.log.Warn("webhook: answer too large", "url", redact(hook.URL), "limit", maxAnswer)
		return registrar.Grant{Status: 503}, nil
	}
	var ans Answer
	if err := json.Unmarshal(raw, &ans); err != nil {
		w.log.Warn("webhook: answer is not the expected JSON", "url", redact(hook.URL), "err", err)
		return registrar.Grant{Status: 503}, nil
	}
	g := registrar.Grant{
		Status:         200,
		OK:             strings.EqualFold(ans.Status, "ok"),
		Msg:            ans.Msg,
		Expires:        int(ans.Expires),
		CallHook:       ans.CallHook,
		CallStatusHook: ans.CallStatusHook,
		Blacklist:      ans.Blacklist,
		Headers:        safeHeaders(ans.Headers),

		AllowDirectAppCalling:   ans.AllowDirectAppCalling,
		AllowDirectQueueCalling: ans.AllowDirectQueueCalling,
		AllowDirectUserCalling:  ans.AllowDirectUserCalling,
		AllowUserMismatch:       ans.AllowUsernameMismatch,
	}
	return g, nil
}

func (w *Webhook) observe(start time.Time, status int) {
	if w.Observe != nil {
		w.Observe(time.Since(start), status)
	}
}

func (w *Webhook) connectionFailure(ctx context.Context, req registrar.AuthRequest, hookURL string, err error) registrar.Grant {
	w.log.Warn("webhook: call failed", "url", redact(hookURL), "err", redactErr(err, hookURL))
	w.alerter.Alert(ctx, alerts.Alert{
		Type:               alerts.WebhookConnectionFailure,
		AccountSID:         req.Account.SID,
		ServiceProviderSID: req.Account.ServiceProviderSID,
		Message:            "registration webhook " + redact(hookURL) + " unreachable",
		Detail:             redactErr(err, hookURL),
	})
	return registrar.Grant{Status: 503}
}

// sipStatusFor maps a hook's HTTP status to the SIP answer: a refusal
// (4xx, 401 and 403 included) is 403, anything else (5xx, 3xx redirects
// not followed, ...) 503. The HTTP code never passes through: a 401 would
// lack WWW-Authenticate and a 6xx would end the phone's attempts.
func sipStatusFor(httpStatus int) int {
	if httpStatus >= 400 && httpStatus <= 499 {
		return 403
	}
	return 503
}

// safeHeaders keeps only header names and values that cannot break the SIP
// message (no CR/LF, token names) and never lets the hook override the
// headers the front writes.
func safeHeaders(in map[string]any) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, raw := range in {
		var v string
		switch x := raw.(type) {
		case string:
			v = x
		case float64, bool:
			v = fmt.Sprint(x) // numbers and booleans are fine as header values
		default:
			continue // objects, arrays, null: not a header value
		}
		if !isToken(k) || strings.ContainsAny(v, "\r\n\x00") || len(v) > 1024 {
			continue
		}
		switch strings.ToLower(k) {
		case "via", "from", "to", "call-id", "cseq", "content-length", "contact", "expires", "www-authenticate":
			continue
		}
		out[k] = v
		if len(out) >= 16 {
			break
		}
	}
	return out
}

func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// redact removes credentials embedded in a URL before it is logged.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	if u.User != nil {
		u.User = url.User("xxx")
	}
	u.RawQuery = ""
	return u.String()
}

func redactErr(err error, hookURL string) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Op + " " + redact(hookURL) + ": " + uerr.Err.Error()
	}
	return err.Error()
}
