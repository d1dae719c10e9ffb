// Package jsonwire writes and reads the fixed-shape JSON values the service
// keeps in Redis and publishes (the binding, registration events) without
// reflection, byte for byte as encoding/json writes them and accepting
// exactly what encoding/json accepts. The values are a contract with the
// rest of a jambonz cluster (docs/contract.md): the tests and fuzz targets
// of this package and of its users compare every result with
// encoding/json's. Why: docs/performance.md ("JSON of the binding and the
// event").
package jsonwire

import (
	"strconv"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// safe marks the ASCII bytes encoding/json writes as they are in a string
// (with its default HTML escaping): printable ASCII and DEL, except the
// quote, the backslash and the HTML-sensitive <, > and &.
var safe = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// AppendString appends s as a JSON string exactly as encoding/json's
// Marshal writes a Go string: the quote and backslash escaped, control
// characters as \b \f \n \r \t or \u00XX, <, > and & as \u003c, \u003e
// and \u0026, U+2028 and U+2029 escaped, each byte of invalid UTF-8 as
// \ufffd, everything else as it is.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && safe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte { return strconv.AppendBool(dst, v) }

// AppendInt appends a signed integer as encoding/json writes it.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// AppendUint appends an unsigned integer as encoding/json writes it.
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }
