// Package auth checks REGISTER credentials: through the account's HTTP
// registration webhook (docs/contract.md#registration-webhook) or against the clients table.
package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

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

// bodyBufs holds buffers the POST bodies are built in; one grown by a large
// body is not kept.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func putBodyBuf(b *[]byte) {
	if cap(*b) <= 8<<10 {
		bodyBufs.Put(b)
	}
}

// Webhook calls the account's registration hook.
type Webhook struct {
	client    *fasthttp.Client
	timeout   time.Duration
	userAgent string // the User-Agent header's value, empty when not configured
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
		client:    newHookClient(timeout),
		timeout:   timeout,
		userAgent: userAgent,
		alerter:   alerter,
		log:       log,
		now:       time.Now,
		inflight:  newInFlight(0),
	}
}

// Connection pool of the hook client (docs/performance.md, "Webhook HTTP
// client: net/http vs fasthttp").
const (
	// hookMaxConnsPerHost bounds the connections to one hook server: as many
	// as the UDP workers (SIP_UDP_WORKERS' default) that can call it at once.
	hookMaxConnsPerHost = 512
	// hookMaxIdle closes a connection unused this long: below the 5 s
	// keep-alive of Node's HTTP server (the usual hook server), so the pool
	// rarely holds a connection the server has already closed.
	hookMaxIdle = 4 * time.Second
	// hookMaxAttempts allows sending again only a request that was never
	// written (errStaleConn), e.g. through several pooled connections a
	// restarted server had closed.
	hookMaxAttempts = 4
)

// defaultUserAgent is what net/http sent when no User-Agent is configured;
// kept so hooks see the same header as before.
const defaultUserAgent = "Go-http-client/1.1"

// newHookClient returns the hook's HTTP client. Per call, the whole call
// (waiting for a connection, dialling, TLS, writing and reading) is bounded
// by the request's deadline; redirects are never followed (Do does not);
// answers are read up to maxAnswer; a request is sent again only when it was
// never written (retryNothingWritten), so a hook never sees a call twice.
func newHookClient(timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		Name:                defaultUserAgent,
		MaxConnsPerHost:     hookMaxConnsPerHost,
		MaxIdleConnDuration: hookMaxIdle,
		// A burst beyond the pool waits for a connection rather than
		// failing at once; the call's own deadline (shorter) still bounds it.
		MaxConnWaitTimeout:        timeout,
		MaxResponseBodySize:       maxAnswer,
		MaxIdemponentCallAttempts: hookMaxAttempts,
		RetryIfErr:                retryNothingWritten,
		// Send the hook's path as configured (net/http did not clean it).
		DisablePathNormalizing: true,
		DialTimeout:            dialChecked,
	}
}

// retryNothingWritten is the client's only retry: over a pooled connection
// found closed by the server before a byte of the request was written. Any
// other failure, for a POST or a GET, is final (fasthttp retries idempotent
// requests by default; a hook call carries a nonce count and must not be
// sent twice).
func retryNothingWritten(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, errStaleConn)
}

// applicationJSON is the value of the Content-Type and Accept headers.
const applicationJSON = "application/json"

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
	u, err := url.Parse(hook.URL)
	if err != nil {
		return w.connectionFailure(ctx, req, hook.URL, err), nil
	}

	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var signed []byte
	if method == "GET" {
		q := u.Query()
		for k, v := range p.query() {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		hreq.SetRequestURI(u.String())
		hreq.Header.SetMethod(fasthttp.MethodGet)
		signed = getSignedBody
	} else {
		hreq.SetRequestURI(hook.URL)
		hreq.Header.SetMethod(fasthttp.MethodPost)
		body := bodyBufs.Get().(*[]byte)
		*body = p.appendJSON((*body)[:0])
		hreq.SetBody(*body) // copied into the request's pooled buffer
		putBodyBuf(body)
		signed = hreq.Body() // the bytes sent
	}
	hreq.Header.SetContentType(applicationJSON)
	hreq.Header.Set("Accept", applicationJSON)
	if hook.Username != "" && hook.Password != "" {
		hreq.Header.Set("Authorization", basicAuth(hook.Username, hook.Password))
	}
	if req.Account.WebhookSecret != "" {
		hreq.Header.Set("Jambonz-Signature", Sign(req.Account.WebhookSecret, w.now(), signed))
	}
	if w.userAgent != "" {
		hreq.Header.SetUserAgent(w.userAgent)
	}

	start := time.Now()
	deadline := start.Add(w.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err = ctx.Err(); err == nil {
		err = w.client.DoDeadline(hreq, resp, deadline)
	}
	status := 0
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		// The header was read: the status is known, the answer is not kept.
		status = resp.StatusCode()
	case err != nil:
		w.observe(start, 0)
		return w.connectionFailure(ctx, req, hook.URL, &url.Error{Op: opName(method), URL: hook.URL, Err: err}), nil
	default:
		status = resp.StatusCode()
	}
	w.observe(start, status)
	if status != fasthttp.StatusOK {
		w.log.Info("webhook: non-200 answer", "url", redact(hook.URL), "status", status)
		w.alerter.Alert(ctx, alerts.Alert{
			Type:               alerts.WebhookFailure,
			AccountSID:         req.Account.SID,
			ServiceProviderSID: req.Account.ServiceProviderSID,
			Message:            fmt.Sprintf("registration webhook %s answered %d", redact(hook.URL), status),
			Detail:             strconv.Itoa(status),
		})
		return registrar.Grant{Status: sipStatusFor(status)}, nil
	}
	if err != nil { // ErrBodyTooLarge
		w.log.Warn("webhook: answer too large", "url", redact(hook.URL), "limit", maxAnswer)
		return registrar.Grant{Status: 503}, nil
	}
	var ans Answer
	if err := json.Unmarshal(resp.Body(), &ans); err != nil {
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

// opName is how net/http named a failed call in its errors ("Post",
// "Get"); the log line and alert keep that form.
func opName(method string) string {
	if method == "GET" {
		return "Get"
	}
	return "Post"
}

// basicAuth is the Authorization value for user and password (RFC 7617).
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
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
