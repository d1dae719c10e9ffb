package drachtio

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// ErrNotConnected is returned for commands while no session is up.
var ErrNotConnected = errors.New("drachtio: not connected")

// ErrConnectionLost fails commands and transactions pending on a connection
// that closed; drachtio-server forgets them too.
var ErrConnectionLost = errors.New("drachtio: connection lost")

// RejectedError is a command answered with a status other than OK
// (NO / NOK + reason).
type RejectedError struct {
	Status, Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("drachtio: command rejected: %s %s", e.Status, e.Reason)
}

// Options configure a Client.
type Options struct {
	// Addr is host:port of the control port.
	Addr   string
	Secret string
	Tags   []string
	// TLS, when set, dials the control port with TLS (same protocol inside).
	TLS *tls.Config
	// Routes are the SIP methods to receive, e.g. "register"; sent lower case.
	Routes []string

	PingInterval   time.Duration // default 15s; < 0 disables pings
	MaxMissedPongs int           // consecutive missed pongs before reconnecting, default 2
	BackoffInitial time.Duration // default 150ms
	BackoffMax     time.Duration // default 10s
	DialTimeout    time.Duration // default 5s
	CommandTimeout time.Duration // default 10s, for authenticate/route/ping

	// OnRequest receives incoming SIP requests (S->C sip frames with a
	// request start line). It runs on the reader goroutine: do not block.
	OnRequest func(Message)
	// OnSession is called after every successful authenticate + route.
	OnSession func(Session)
	Log       *slog.Logger
}

// Session is what the server told us when we authenticated.
type Session struct {
	// Hostports is the server's SIP addresses (external IPs when set).
	Hostports string
	Version   string
	// LocalHostports is the bound (private) addresses; "" on old servers.
	LocalHostports string
	// ServerAddr is the remote address of the control connection.
	ServerAddr string
}

// Client keeps one control connection to drachtio-server up.
type Client struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	cur     *conn
	session Session
}

// New returns a client; Run connects it.
func New(opts Options) *Client {
	if opts.PingInterval == 0 {
		opts.PingInterval = 15 * time.Second
	}
	if opts.MaxMissedPongs <= 0 {
		opts.MaxMissedPongs = 2
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = 150 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 10 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Client{opts: opts, log: opts.Log}
}

// Session returns the current session, false while disconnected.
func (c *Client) Session() (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session, c.cur != nil
}

// Run connects, authenticates, routes and serves until ctx ends,
// reconnecting with capped exponential backoff (also before the first
// success). It returns nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	delay := c.opts.BackoffInitial
	for {
		up, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up {
			delay = c.opts.BackoffInitial
		}
		c.log.Warn("drachtio: connection ended, reconnecting", "addr", c.opts.Addr, "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(time.Duration(float64(delay)*1.7), c.opts.BackoffMax)
	}
}

// runOnce runs one connection; up tells whether the session got ready.
func (c *Client) runOnce(ctx context.Context) (up bool, err error) {
	nc, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	cn := newConn(nc, c.opts.OnRequest)
	defer cn.close(ErrConnectionLost)
	stop := context.AfterFunc(ctx, func() { cn.close(context.Canceled) })
	defer stop()
	go cn.readLoop()

	sess, err := c.handshake(ctx, cn)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.cur, c.session = cn, sess
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.cur == cn {
			c.cur = nil
		}
		c.mu.Unlock()
	}()
	c.log.Info("drachtio: connected", "addr", c.opts.Addr, "hostports", sess.Hostports,
		"local_hostports", sess.LocalHostports, "version", sess.Version)
	if c.opts.OnSession != nil {
		c.opts.OnSession(sess)
	}
	if c.opts.PingInterval > 0 {
		go c.pingLoop(cn)
	}
	<-cn.done
	return true, cn.err()
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.opts.DialTimeout, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	if c.opts.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.opts.TLS}
		nc, err = td.DialContext(ctx, "tcp", c.opts.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.opts.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("drachtio: dial %s: %w", c.opts.Addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return nc, nil
}

// handshake authenticates and sends the routes.
func (c *Client) handshake(ctx context.Context, cn *conn) (Session, error) {
	cctx, cancel := context.WithTimeout(ctx, c.opts.CommandTimeout)
	defer cancel()
	res, err := cn.command(cctx, []string{"authenticate", c.opts.Secret, strings.Join(c.opts.Tags, ",")}, "")
	if err != nil {
		return Session{}, fmt.Errorf("drachtio: authenticate: %w", err)
	}
	sess := Session{Hostports: res.Field(4), Version: res.Field(5), LocalHostports: res.Field(6),
		ServerAddr: cn.nc.RemoteAddr().String()}
	for _, r := range c.opts.Routes {
		if _, err := cn.command(cctx, []string{"route", strings.ToLower(r)}, ""); err != nil {
			return Session{}, fmt.Errorf("drachtio: route %s: %w", r, err)
		}
	}
	return sess, nil
}

// pingLoop closes cn after MaxMissedPongs consecutive pings without pong.
func (c *Client) pingLoop(cn *conn) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.PingInterval)
		_, err := cn.command(ctx, []string{"ping"}, "")
		cancel()
		if err == nil {
			missed = 0
			continue
		}
		missed++
		c.log.Warn("drachtio: ping failed", "err", err, "missed", missed)
		if missed >= c.opts.MaxMissedPongs {
			cn.close(fmt.Errorf("drachtio: %d pongs missed: %w", missed, ErrConnectionLost))
			return
		}
	}
}

func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return nil, ErrNotConnected
	}
	return c.cur, nil
}

// Command sends one command (fields after the id) with optional SIP text
// and returns the server's OK response.
func (c *Client) Command(ctx context.Context, fields []string, sipText string) (Message, error) {
	cn, err := c.current()
	if err != nil {
		return Message{}, err
	}
	return cn.command(ctx, fields, sipText)
}

// Request sends a new SIP request through the server (proxy: next-hop URI
// or "") and returns its client transaction once the server echoed it.
func (c *Client) Request(ctx context.Context, proxy, sipText string) (*Transaction, error) {
	cn, err := c.current()
	if err != nil {
		return nil, err
	}
	return cn.request(ctx, proxy, sipText)
}

// Transaction is a SIP request sent through the server.
type Transaction struct {
	// Echo is the server's OK answer: field 10 the transaction id, SIP the
	// request as sent (with Via, From tag, Call-ID, CSeq).
	Echo Message
	ID   string
	cn   *conn
	ch   chan Message
}

// Final waits for the final (>= 200) response. Provisional responses are
// skipped. Stack timeouts and transport failures arrive as 408/503 responses.
func (t *Transaction) Final(ctx context.Context) (Message, error) {
	defer t.cn.forgetTxn(t.ID)
	for {
		select {
		case m := <-t.ch:
			if statusCode(m.SIP) >= 200 {
				return m, nil
			}
		case <-t.cn.done:
			return Message{}, t.cn.err()
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

func statusCode(sipText string) int {
	s, ok := strings.CutPrefix(sipText, "SIP/2.0 ")
	if !ok || len(s) < 3 {
		return 0
	}
	n := 0
	for _, b := range []byte(s[:3]) {
		if b < '0' || b > '9' {
			return 0
		}
		n = n*10 + int(b-'0')
	}
	return n
}

// conn is one control connection with its pending commands and client
// transactions; everything dies with it.
type conn struct {
	nc        net.Conn
	onRequest func(Message)

	wmu sync.Mutex // one frame per Write

	mu      sync.Mutex
	pending map[string]*pending
	txns    map[string]chan Message
	closed  error
	done    chan struct{}
}

type pending struct {
	ch chan Message
	// txn, when set, receives the responses of the SIP request this
	// command sent; registered by the reader before it reads on.
	txn chan Message
}

func newConn(nc net.Conn, onRequest func(Message)) *conn {
	return &conn{nc: nc, onRequest: onRequest, pending: map[string]*pending{},
		txns: map[string]chan Message{}, done: make(chan struct{})}
}

func (cn *conn) close(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.closed != nil {
		return
	}
	cn.closed = err
	close(cn.done)
	_ = cn.nc.Close()
	cn.pending = map[string]*pending{}
	cn.txns = map[string]chan Message{}
}

func (cn *conn) err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.closed
}

func newID() string { return rand.Text() }

func (cn *conn) send(payload string) error {
	if len(payload) > MaxClientFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(payload))
	}
	frame := AppendFrame(make([]byte, 0, len(payload)+8), payload)
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := cn.nc.Write(frame); err != nil {
		cn.close(fmt.Errorf("drachtio: write: %w", err))
		return fmt.Errorf("drachtio: write: %w", err)
	}
	return nil
}

func (cn *conn) command(ctx context.Context, fields []string, sipText string) (Message, error) {
	return cn.exchange(ctx, fields, sipText, nil)
}

func (cn *conn) exchange(ctx context.Context, fields []string, sipText string, txn chan Message) (Message, error) {
	for _, f := range fields {
		if !validField(f) {
			return Message{}, fmt.Errorf("drachtio: field %q contains | or a line break", f)
		}
	}
	id := newID()
	p := &pending{ch: make(chan Message, 1), txn: txn}
	cn.mu.Lock()
	if cn.closed != nil {
		cn.mu.Unlock()
		return Message{}, cn.closed
	}
	cn.pending[id] = p
	cn.mu.Unlock()
	forget := func() {
		cn.mu.Lock()
		delete(cn.pending, id)
		cn.mu.Unlock()
	}
	if err := cn.send(Message{Fields: append([]string{id}, fields...), SIP: sipText}.Payload()); err != nil {
		forget()
		return Message{}, err
	}
	select {
	case m := <-p.ch:
		if st := m.Field(3); st != "OK" {
			return m, &RejectedError{Status: st, Reason: m.Field(4)}
		}
		return m, nil
	case <-cn.done:
		return Message{}, cn.err()
	case <-ctx.Done():
		forget()
		return Message{}, ctx.Err()
	}
}

func (cn *conn) request(ctx context.Context, proxy, sipText string) (*Transaction, error) {
	if !validField(proxy) {
		return nil, fmt.Errorf("drachtio: bad proxy %q", proxy)
	}
	ch := make(chan Message, 8)
	fields := []string{"sip", "", ""}
	if proxy != "" {
		fields = append(fields, proxy)
	}
	echo, err := cn.exchange(ctx, fields, sipText, ch)
	if err != nil {
		return nil, err
	}
	return &Transaction{Echo: echo, ID: echo.Field(10), cn: cn, ch: ch}, nil
}

func (cn *conn) forgetTxn(id string) {
	cn.mu.Lock()
	delete(cn.txns, id)
	cn.mu.Unlock()
}

// readLoop dispatches server frames until the connection fails.
func (cn *conn) readLoop() {
	fr := NewFrameReader(cn.nc, 0, 0)
	for {
		payload, err := fr.Next()
		if err != nil {
			cn.close(fmt.Errorf("drachtio: read: %w", err))
			return
		}
		cn.dispatch(ParseMessage(payload))
	}
}

func (cn *conn) dispatch(m Message) {
	switch m.Type() {
	case "response":
		cn.mu.Lock()
		p, ok := cn.pending[m.Field(2)]
		if ok {
			delete(cn.pending, m.Field(2))
			// Register the client transaction before reading on: its
			// responses may be in the very next frame.
			if p.txn != nil && m.Field(3) == "OK" && m.Field(10) != "" {
				cn.txns[m.Field(10)] = p.txn
			}
		}
		cn.mu.Unlock()
		if ok {
			p.ch <- m
		}
	case "sip":
		if len(m.Fields) < 10 {
			return
		}
		if m.IsResponse() {
			cn.mu.Lock()
			ch, ok := cn.txns[m.Field(8)]
			cn.mu.Unlock()
			if ok {
				select {
				case ch <- m:
				default: // a stuck waiter must not block the reader
				}
			}
			return
		}
		if m.Field(2) == "network" && cn.onRequest != nil {
			cn.onRequest(m)
		}
	default:
		// cdr:* and types unknown to us: tolerated, ignored.
	}
}
