package native

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sipgo's UDP reader adds every new source address to its connection pool
// and to a set of its own, and forgets them only when the reader stops: one
// datagram from each of 900,000 spoofed sources kept ~110 MB for good
// (docs/security.md). So the reader runs in rounds: a round ends after
// udpRoundDatagrams datagrams or udpRoundTTL after its first one, the
// reader returns (sipgo then drops that round's entries) and a new reader
// starts on the same socket. Transactions of the ended round keep working:
// they write through the same socket, and retransmissions are matched by
// branch, not by pool entry.
const (
	udpRoundDatagrams = 16384
	udpRoundTTL       = 30 * time.Second
)

// errRoundOver ends one sipgo UDP reader; it wraps net.ErrClosed so sipgo
// stops quietly.
var errRoundOver = fmt.Errorf("native: udp round over: %w", net.ErrClosed)

// serveUDP serves pc in rounds until the socket is closed.
func (f *Front) serveUDP(pc net.PacketConn) error {
	pool := f.ua.TransportLayer().Pool("udp")
	laddr := pc.LocalAddr().String()
	for {
		r := &udpRound{PacketConn: pc, limit: f.opts.udpRoundDatagrams, ttl: f.opts.udpRoundTTL, log: f.rlog}
		_ = pc.SetReadDeadline(time.Time{})
		r.onOver = func() {
			// Outbound requests find the listener by its address in the pool
			// (client.go); keep an entry there between two readers. It writes
			// through the socket and is replaced by the next reader's.
			pool.Add(laddr, &sip.UDPConnection{PacketConn: pc, PacketAddr: laddr, Listener: true})
		}
		if err := f.srv.ServeUDP(r); err != nil || !r.over {
			return err
		}
		f.udpRounds.Add(1)
	}
}

// udpRound is the socket as one sipgo reader sees it.
type udpRound struct {
	net.PacketConn
	limit  int
	ttl    time.Duration
	log    *rateLog
	onOver func()

	n       int
	backoff time.Duration
	over    bool // the round ended (not the socket)
	closed  bool // the socket is closed
}

func (r *udpRound) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if r.n >= r.limit {
			return r.end()
		}
		n, addr, err := r.PacketConn.ReadFrom(b)
		if err == nil {
			if r.n == 0 {
				_ = r.PacketConn.SetReadDeadline(time.Now().Add(r.ttl))
			}
			r.n++
			r.backoff = 0
			return n, addr, nil
		}
		if errors.Is(err, net.ErrClosed) {
			r.closed = true
			return n, addr, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return r.end()
		}
		// Anything else (ICMP errors reported on the socket, ENOBUFS ...)
		// must not stop UDP: log, wait a little and read on.
		r.backoff = nextBackoff(r.backoff)
		r.log.Warn("udp-read", "sip: UDP read failed, retrying", "err", err.Error(), "retry_in_ms", r.backoff.Milliseconds())
		time.Sleep(r.backoff)
	}
}

func (r *udpRound) end() (int, net.Addr, error) {
	r.over = true
	r.onOver()
	return 0, nil, errRoundOver
}

// Close is not the socket's: sipgo never closes a listener it was given,
// and the front closes the socket itself.
func (r *udpRound) Close() error { return nil }

// udpReadFilter drops UDP datagrams whose first line is not a SIP start line
// before sipgo parses them, records their source or logs them: scanners'
// probes and 1-byte floods cost nothing then. Stream data passes as is (a
// read there is not a message).
func udpReadFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if p.Transport != "UDP" || looksLikeSIP(data) {
		return data, nil
	}
	return nil, nil
}

// maxStartLine bounds the search for the end of the first line.
const maxStartLine = 4096

func looksLikeSIP(b []byte) bool {
	line := b[:min(len(b), maxStartLine)]
	i := bytes.IndexByte(line, '\n')
	if i < 0 {
		return false
	}
	return bytes.Contains(line[:i], []byte("SIP/"))
}
