// Package drachtio is a client of drachtio-server's control protocol
// (inbound TCP mode): framing, command ids and the pending-command table,
// authenticate, route, ping/pong, reconnect with capped backoff, and the
// client side of SIP transactions sent through the server.
//
// The wire format is described in docs/drachtio-protocol.md: every frame is
// "<byte length>#<payload>", the payload a "|"-separated leader optionally
// followed by CRLF and a SIP message.
package drachtio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxClientFrame bounds frames we send: drachtio-server reassembles client
// data in a 12 228-byte ring buffer and silently corrupts the stream beyond it.
const MaxClientFrame = 12000

// DefaultMaxServerFrame bounds frames we accept from the server.
const DefaultMaxServerFrame = 4 << 20

// ErrMalformedFrame is returned for an unparsable length prefix; the
// connection cannot be resynchronised and must be closed.
var ErrMalformedFrame = errors.New("drachtio: malformed frame")

// ErrFrameTooLarge is returned before sending a frame the server cannot take.
var ErrFrameTooLarge = errors.New("drachtio: frame too large")

// AppendFrame appends the framed payload to dst.
func AppendFrame(dst []byte, payload string) []byte {
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, '#')
	return append(dst, payload...)
}

// FrameReader splits a byte stream into frame payloads. It copes with frames
// split across reads and several frames in one read.
type FrameReader struct {
	r         *bufio.Reader
	max       int
	maxDigits int
}

// NewFrameReader reads frames of at most max payload bytes (<= 0: default)
// with a length prefix of at most maxDigits digits (<= 0: 9).
func NewFrameReader(r io.Reader, max, maxDigits int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxServerFrame
	}
	if maxDigits <= 0 {
		maxDigits = 9
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 16<<10), max: max, maxDigits: maxDigits}
}

// Next returns the next payload. io.EOF is returned only on a clean frame
// boundary; a stream ending inside a frame gives io.ErrUnexpectedEOF.
func (fr *FrameReader) Next() ([]byte, error) {
	n, digits := 0, 0
	for {
		b, err := fr.r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == '#' {
			if digits == 0 {
				return nil, fmt.Errorf("%w: empty length", ErrMalformedFrame)
			}
			break
		}
		if b < '0' || b > '9' {
			return nil, fmt.Errorf("%w: byte %q in length", ErrMalformedFrame, b)
		}
		digits++
		if digits > fr.maxDigits {
			return nil, fmt.Errorf("%w: length has more than %d digits", ErrMalformedFrame, fr.maxDigits)
		}
		n = n*10 + int(b-'0')
	}
	if n > fr.max {
		return nil, fmt.Errorf("%w: length %d over %d", ErrMalformedFrame, n, fr.max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// Message is one parsed payload: the leader fields and the SIP text.
type Message struct {
	Fields []string
	SIP    string
}

// ParseMessage splits a payload at its first CR into the leader (split on
// every "|") and the SIP text after the CRLF.
func ParseMessage(payload []byte) Message {
	s := string(payload)
	leader, sipText := s, ""
	if i := strings.IndexByte(s, '\r'); i >= 0 {
		leader = s[:i]
		rest := s[i+1:]
		rest = strings.TrimPrefix(rest, "\n")
		sipText = rest
	}
	return Message{Fields: strings.Split(leader, "|"), SIP: sipText}
}

// Field returns field i, "" when absent.
func (m Message) Field(i int) string {
	if i < len(m.Fields) {
		return m.Fields[i]
	}
	return ""
}

// ID is the sender's message id (field 0).
func (m Message) ID() string { return m.Field(0) }

// Type is the message type (field 1).
func (m Message) Type() string { return m.Field(1) }

// Payload formats the message back into a payload.
func (m Message) Payload() string {
	leader := strings.Join(m.Fields, "|")
	if m.SIP == "" {
		return leader
	}
	return leader + "\r\n" + m.SIP
}

// IsResponse reports whether the SIP text is a response (status line).
func (m Message) IsResponse() bool { return strings.HasPrefix(m.SIP, "SIP/2.0 ") }

// validField reports whether s can be put in a leader.
func validField(s string) bool { return !strings.ContainsAny(s, "|\r\n") }
