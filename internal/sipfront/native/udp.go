package native

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

// sipgo's UDP reader adds every new source address to its connection pool
// and to a set of its own, and forgets them only when the reader stops: one
// datagram from each of 900,000 spoofed sources kept ~110 MB for good
// (docs/security.md). So the reader runs in rounds. A round ends after
// udpRoundDatagrams datagrams, or DefaultUDPStateTTL after it started; its
// reader then parks and a new reader takes the socket. The parked reader
// returns (and sipgo drops its round's entries) only when the next round
// ends: sipgo handles each request in a goroutine of its own that looks the
// source up in the pool to build the transaction, so an entry must outlive
// its datagram by a while, or the answer would leave from a new socket.
// A source's state thus lasts at most two rounds, and two rounds hold at
// most 2*udpRoundDatagrams sources. Transactions of an ended round keep
// working: they write through the same socket, and retransmissions are
// matched by branch, not by pool entry.
const (
	udpRoundDatagrams = 16384
	// DefaultUDPStateTTL is how long a round lasts at most.
	DefaultUDPStateTTL = 30 * time.Second
)

// errRoundOver ends one sipgo UDP reader; it wraps net.ErrClosed so sipgo
// stops quietly.
var errRoundOver = fmt.Errorf("native: udp round over: %w", net.ErrClosed)

// serveUDP serves pc in rounds until the socket is closed.
func (f *Front) serveUDP(pc net.PacketConn) error {
	var prev *udpRound
	for {
		r := &udpRound{
			PacketConn: pc, limit: f.opts.udpRoundDatagrams, ttl: f.opts.Limits.UDPStateTTL, log: f.rlog,
			prev: prev, parked: make(chan struct{}), release: make(chan struct{}),
		}
		errc := make(chan error, 1)
		go func() { errc <- f.srv.ServeUDP(r) }()
		select {
		case <-r.parked:
			prev = r
			f.udpRounds.Add(1)
		case err := <-errc:
			if r.prev != nil {
				r.prev.free()
			}
			return err
		}
	}
}

// udpRound is the socket as one sipgo reader sees it. Only that reader's
// goroutine calls ReadFrom; WriteTo and LocalAddr pass through.
type udpRound struct {
	net.PacketConn
	limit int
	ttl   time.Duration
	log   *logging.Throttle

	prev    *udpRound     // parked predecessor, freed when this round ends
	parked  chan struct{} // closed when this round is over
	release chan struct{} // closed to let the parked reader return

	started bool
	n       int
	backoff time.Duration
}

func (r *udpRound) free() { close(r.release) }

func (r *udpRound) ReadFrom(b []byte) (int, net.Addr, error) {
	if !r.started {
		r.started = true
		_ = r.PacketConn.SetReadDeadline(time.Now().Add(r.ttl))
	}
	for {
		if r.n >= r.limit {
			return r.end()
		}
		n, addr, err := r.PacketConn.ReadFrom(b)
		if err == nil {
			r.n++
			r.backoff = 0
			return n, addr, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return n, addr, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if r.n > 0 {
				return r.end()
			}
			// A quiet round: nothing of its own to drop, but the parked
			// one's sources have had their time.
			if r.prev != nil {
				r.prev.free()
				r.prev = nil
			}
			_ = r.PacketConn.SetReadDeadline(time.Now().Add(r.ttl))
			continue
		}
		// Anything else (ICMP errors reported on the socket, ENOBUFS ...)
		// must not stop UDP: log, wait a little and read on.
		r.backoff = nextBackoff(r.backoff)
		r.log.Warn("udp-read", "sip: UDP read failed, retrying", "err", err.Error(), "retry_in_ms", r.backoff.Milliseconds())
		time.Sleep(r.backoff)
	}
}

// end frees the previous round, hands the socket to the next reader and
// waits to be freed in turn.
func (r *udpRound) end() (int, net.Addr, error) {
	if r.prev != nil {
		r.prev.free()
		r.prev = nil
	}
	close(r.parked)
	<-r.release
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
