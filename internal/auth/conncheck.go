package auth

import (
	"errors"
	"net"
	"time"
)

// errStaleConn is returned, before a byte is written, when the request was
// about to go over a pooled connection the hook server has already closed.
// The request was not sent, so it is the one failure sent again
// (retryNothingWritten) — as net/http did for requests it had not written.
var errStaleConn = errors.New("webhook: pooled connection closed by the server")

// dialChecked dials the hook server (timeout: what is left of the call) and
// wraps the connection so that a request about to be written over it again
// first checks it was not closed by the server while idle. net/http learnt
// that from a reader goroutine per connection; here it costs one
// non-blocking peek per reused request.
func dialChecked(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newCheckedConn(c), nil
}

// checkedConn is a connection that, on the first Write after a Read (the
// next request after an answer), peeks whether the server closed it.
type checkedConn struct {
	net.Conn
	peer  peerChecker
	check bool
}

// peerChecker reports whether the server closed (or reset) the connection.
type peerChecker interface{ closedByPeer() bool }

func (c *checkedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.check = true
	return n, err
}

func (c *checkedConn) Write(b []byte) (int, error) {
	if c.check {
		c.check = false
		if c.peer != nil && c.peer.closedByPeer() {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(b)
}
