package native

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: Linux spreads the datagrams of one address over
// every socket bound to it with SO_REUSEPORT (by a hash of the source), so
// each socket can have its own reader.
const reusePortSupported = true

// udpSockets is how many sockets serve each UDP listen address.
func (f *Front) udpSockets() int {
	if f.opts.UDPSockets > 0 {
		return f.opts.UDPSockets
	}
	return runtime.GOMAXPROCS(0)
}

// listenUDP binds n UDP sockets to addr with SO_REUSEPORT (the first one
// resolves port 0, the others bind the port it got).
func listenUDP(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
	var socks []*net.UDPConn
	for i := 0; i < max(n, 1); i++ {
		if i == 1 {
			addr = socks[0].LocalAddr().String()
		}
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, s := range socks {
				_ = s.Close()
			}
			return nil, err
		}
		uc := pc.(*net.UDPConn)
		// Bursts of REGISTERs overflow the default buffer (sipgo-notes).
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
		socks = append(socks, uc)
	}
	return socks, nil
}
