package native

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

// Limits bound what peers of the stream listeners (TCP, TLS, WS, WSS) can
// hold; docs/security.md explains each.
type Limits struct {
	// MaxConnections caps open stream connections in total (all stream
	// listeners together). It is lowered further when the process's open
	// files limit (RLIMIT_NOFILE) would not leave room for the backends.
	MaxConnections int
	// MaxConnectionsPerIP caps open stream connections per source IP.
	MaxConnectionsPerIP int
	// HandshakeTimeout bounds the time from accept to the first complete SIP
	// request (TLS handshake and WebSocket upgrade included).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that carried no request for that long,
	// unless it carries a registration binding (kept until the binding
	// expires, plus IdleTimeout).
	IdleTimeout time.Duration
	// MaxMessageSize is the largest SIP message accepted, in bytes.
	MaxMessageSize int
	// UDPStateTTL bounds how long the SIP stack remembers a UDP source
	// (udp.go): between one and two of these after its last datagram.
	UDPStateTTL time.Duration
}

// Defaults of Limits; docs/configuration.md names the variables.
const (
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultMaxMessageSize      = 65535
)

func (l Limits) withDefaults() Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionsPerIP <= 0 {
		l.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.UDPStateTTL <= 0 {
		l.UDPStateTTL = DefaultUDPStateTTL
	}
	return l
}

// fdCap is how many stream connections fit in the open files limit while
// leaving a quarter of it (at least 64) to Redis, MySQL, webhooks and the
// HTTP port: sockets beyond it would starve those and fail every request.
func fdCap() (int, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return 0, false
	}
	n := int(rl.Cur)
	reserve := max(64, n/4)
	if n-reserve < n/2 {
		return max(1, n/2), true
	}
	return n - reserve, true
}

// maxBoundHold bounds how long a REGISTER 200 keeps a connection open
// whatever the expires it granted.
const maxBoundHold = 24 * time.Hour

// connGuard admits, counts and times out stream connections.
type connGuard struct {
	limits Limits
	log    *logging.Throttle

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
	conns map[string]*guardConn // by connKey(local, remote)
}

func newConnGuard(l Limits, log *logging.Throttle) *connGuard {
	return &connGuard{limits: l, log: log, perIP: map[netip.Addr]int{}, conns: map[string]*guardConn{}}
}

func connKey(local, remote string) string { return local + "|" + remote }

// admit counts c in, or closes it at once when a cap is reached.
func (g *connGuard) admit(c net.Conn, transport string) (*guardConn, bool) {
	ip := addrPort(c.RemoteAddr()).Addr()
	g.mu.Lock()
	var refused string
	switch {
	case g.total >= g.limits.MaxConnections:
		refused = "max_connections"
	case g.perIP[ip] >= g.limits.MaxConnectionsPerIP:
		refused = "max_connections_per_ip"
	}
	if refused != "" {
		g.mu.Unlock()
		_ = c.Close()
		g.log.Warn("refused:"+refused, "sip: connection refused, cap reached",
			"transport", transport, "source", ip.String(), "cap", refused)
		return nil, false
	}
	gc := &guardConn{Conn: c, g: g, ip: ip, key: connKey(c.LocalAddr().String(), c.RemoteAddr().String())}
	g.total++
	g.perIP[ip]++
	g.conns[gc.key] = gc
	g.mu.Unlock()
	gc.mu.Lock()
	gc.deadline = time.Now().Add(g.limits.HandshakeTimeout)
	gc.timer = time.AfterFunc(g.limits.HandshakeTimeout, gc.expire)
	gc.mu.Unlock()
	return gc, true
}

func (g *connGuard) release(c *guardConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if n := g.perIP[c.ip] - 1; n > 0 {
		g.perIP[c.ip] = n
	} else {
		delete(g.perIP, c.ip)
	}
	if g.conns[c.key] == c {
		delete(g.conns, c.key)
	}
}

// lookup finds the connection a request came in on; nil for UDP or unknown.
func (g *connGuard) lookup(local, remote string) *guardConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[connKey(local, remote)]
}

// open is the number of admitted connections.
func (g *connGuard) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// guardConn is an admitted stream connection: closed by its timer when
// its handshake or idle time is over.
type guardConn struct {
	net.Conn
	g   *connGuard
	ip  netip.Addr
	key string

	// prefix holds the first byte, read before the connection was handed to
	// the SIP stack; only the stack's single reader touches it afterwards.
	prefix []byte

	mu         sync.Mutex
	deadline   time.Time
	boundUntil time.Time
	timer      *time.Timer
	closed     bool
	once       sync.Once
}

func (c *guardConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Close releases the connection's slot; it may be called more than once
// (the stack, the timer and a TLS wrapper may all close it).
func (c *guardConn) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.timer.Stop()
		c.mu.Unlock()
		c.g.release(c)
		err = c.Conn.Close()
	})
	return err
}

// active notes a complete request: the connection may now stay idle for
// IdleTimeout (or until its binding ends, if later).
func (c *guardConn) active() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rearmLocked(time.Now())
}

// bound notes a REGISTER answered 200 on this connection granting expires
// seconds (0: the bindings were removed).
func (c *guardConn) bound(expires time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if expires > 0 {
		c.boundUntil = now.Add(min(expires, maxBoundHold) + c.g.limits.IdleTimeout)
	} else {
		c.boundUntil = time.Time{}
	}
	c.rearmLocked(now)
}

func (c *guardConn) rearmLocked(now time.Time) {
	if c.closed {
		return
	}
	c.deadline = now.Add(c.g.limits.IdleTimeout)
	if c.boundUntil.After(c.deadline) {
		c.deadline = c.boundUntil
	}
	c.timer.Reset(c.deadline.Sub(now))
}

func (c *guardConn) expire() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if left := time.Until(c.deadline); left > 0 {
		c.timer.Reset(left)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.g.log.Info("idle", "sip: closing idle connection", "source", c.RemoteAddr().String())
	_ = c.Close()
}

// guardListener wraps a stream listener: accept errors back off instead of
// ending the listener, caps are applied, and a connection reaches the SIP
// stack (and its 32 KB read buffer) only once it has sent a first byte.
type guardListener struct {
	net.Listener
	g         *connGuard
	transport string

	ready     chan *guardConn
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

func newGuardListener(ln net.Listener, g *connGuard, transport string) *guardListener {
	return &guardListener{Listener: ln, g: g, transport: transport, ready: make(chan *guardConn), done: make(chan struct{})}
}

func (l *guardListener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *guardListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// Accept back-off, as net/http's Server does on temporary errors.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return acceptBackoffMin
	}
	return min(2*d, acceptBackoffMax)
}

// acceptLoop never gives up on an accept error other than the listener
// being closed: EMFILE, ENFILE, ECONNABORTED ... pass once sockets close.
func (l *guardListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				_ = l.Close()
				return
			}
			delay = nextBackoff(delay)
			l.g.log.Warn("accept:"+l.transport, "sip: accept failed, retrying",
				"transport", l.transport, "err", err.Error(), "retry_in_ms", delay.Milliseconds())
			select {
			case <-time.After(delay):
				continue
			case <-l.done:
				return
			}
		}
		delay = 0
		gc, ok := l.g.admit(c, l.transport)
		if !ok {
			continue
		}
		go l.handOff(gc)
	}
}

// handOff waits for the first byte (bounded by the handshake timer) before
// giving the connection to the stack.
func (l *guardListener) handOff(c *guardConn) {
	var b [1]byte
	n, err := c.Conn.Read(b[:])
	if err != nil || n == 0 {
		_ = c.Close()
		return
	}
	c.prefix = b[:n:n]
	select {
	case l.ready <- c:
	case <-l.done:
		_ = c.Close()
	}
}
