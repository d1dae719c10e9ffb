//go:build !linux

package native

import (
	"context"
	"net"
)

// reusePortSupported: elsewhere one socket (and reader) per address.
const reusePortSupported = false

func (f *Front) udpSockets() int { return 1 }

func listenUDP(ctx context.Context, addr string, _ int) ([]*net.UDPConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	uc := pc.(*net.UDPConn)
	_ = uc.SetReadBuffer(4 << 20)
	_ = uc.SetWriteBuffer(4 << 20)
	return []*net.UDPConn{uc}, nil
}
