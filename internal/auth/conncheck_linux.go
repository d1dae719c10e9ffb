package auth

import (
	"net"
	"syscall"
	"unsafe"
)

// newCheckedConn wraps c with a peek on its socket (TCP connections only).
func newCheckedConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	p := &socketPeek{raw: raw}
	p.fn = p.peek
	return &checkedConn{Conn: c, peer: p}
}

// socketPeek peeks one byte without blocking: 0 bytes read (the server's
// FIN) or an error other than "nothing to read" (a reset) means the server
// closed the connection. Bytes waiting (an unsolicited answer, or TLS
// records such as session tickets under a TLS connection) are left to the
// reader: the connection is not judged from them.
type socketPeek struct {
	raw    syscall.RawConn
	fn     func(fd uintptr) bool
	closed bool
	buf    [1]byte
}

func (p *socketPeek) peek(fd uintptr) bool {
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	p.closed = (errno == 0 && n == 0) || (errno != 0 && errno != syscall.EAGAIN && errno != syscall.EINTR)
	return true
}

func (p *socketPeek) closedByPeer() bool {
	p.closed = false
	if err := p.raw.Read(p.fn); err != nil {
		return true
	}
	return p.closed
}
