package drachtiostub

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Server-side reader limits of drachtio-server (protocol doc 1.2): at most
// five length digits, and a 12 228-byte reassembly buffer.
const (
	maxLengthDigits = 5
	ringBuffer      = 12228
)

var errProtocol = errors.New("drachtiostub: client protocol violation")

// readFrame reads one client frame the way the server's reader accepts it.
// Written independently of the client package so a framing bug is not
// shared by both ends of the tests.
func readFrame(r *bufio.Reader) (string, error) {
	var digits []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if b == '#' {
			break
		}
		if b < '0' || b > '9' || len(digits) == maxLengthDigits {
			return "", fmt.Errorf("%w: bad length prefix %q+%q", errProtocol, digits, b)
		}
		digits = append(digits, b)
	}
	if len(digits) == 0 {
		return "", fmt.Errorf("%w: empty length prefix", errProtocol)
	}
	n, _ := strconv.Atoi(string(digits))
	if n+len(digits)+1 > ringBuffer {
		return "", fmt.Errorf("%w: frame of %d bytes overflows the server's ring buffer", errProtocol, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// frame formats a server frame: byte length, '#', payload.
func frame(payload string) []byte {
	return []byte(strconv.Itoa(len(payload)) + "#" + payload)
}

// split returns the leader fields and the SIP text of a payload.
func split(payload string) ([]string, string) {
	leader, sipText := payload, ""
	if i := strings.IndexByte(payload, '\r'); i >= 0 {
		leader = payload[:i]
		sipText = strings.TrimPrefix(payload[i+1:], "\n")
	}
	return strings.Split(leader, "|"), sipText
}
