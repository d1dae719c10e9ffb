package jsonwire

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Text is what a Reader reads: a Redis reply or a stored string.
type Text interface{ ~string | ~[]byte }

// maxDepth is encoding/json's nesting limit: an object or array nested
// deeper (the top-level value counting as 1) is a syntax error there.
const maxDepth = 10000

// plain marks the bytes a string holds as they are: ASCII from the space
// on, except the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Reader reads one JSON object of known members, accepting exactly what
// encoding/json's Unmarshal into a struct accepts: members in any order,
// repeated ones (the last wins), unknown ones (skipped, but checked),
// null for any member (leaves it as it was), escapes, whitespace. Any
// input encoding/json refuses, for its syntax or because a value does not
// fit its member's Go type, is an error. It stops at the first error; its
// messages are its own (callers wanting encoding/json's run it on error).
//
// Use: Object, then Next and one value method (String, Bool, Int64,
// Uint32, Skip) per member until Next reports the end, then Close.
type Reader[T Text] struct {
	data  T
	off   int
	depth int
	err   error
	state int8 // 0 before Object; 1 first member; 2 after a member; 3 object ended
	key   []byte
}

// NewReader returns a Reader of data.
func NewReader[T Text](data T) Reader[T] { return Reader[T]{data: data} }

func (r *Reader[T]) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("jsonwire: %s at offset %d", what, r.off)
	}
}

func (r *Reader[T]) ws() {
	for r.off < len(r.data) {
		switch r.data[r.off] {
		case ' ', '\t', '\n', '\r':
			r.off++
		default:
			return
		}
	}
}

// peek returns the byte at the offset, 0 at the end.
func (r *Reader[T]) peek() byte {
	if r.off < len(r.data) {
		return r.data[r.off]
	}
	return 0
}

// Object reads the start of the top-level value: true for an object, false
// for null (encoding/json leaves the struct as it is) or on error (any
// other value cannot decode into a struct).
func (r *Reader[T]) Object() bool {
	r.ws()
	switch r.peek() {
	case '{':
		r.off++
		r.depth, r.state = 1, 1
		return true
	case 'n':
		r.literal("null")
		r.state = 3
		return false
	}
	r.fail("value is not an object")
	return false
}

// Next moves to the next member and returns its name, unescaped (valid
// until the next call of any method); false at the end of the object or on error.
func (r *Reader[T]) Next() (T, bool) {
	var none T
	if r.err != nil {
		return none, false
	}
	r.ws()
	switch r.state {
	case 1:
		if r.peek() == '}' {
			r.off++
			r.state = 3
			return none, false
		}
	case 2:
		switch r.peek() {
		case '}':
			r.off++
			r.state = 3
			return none, false
		case ',':
			r.off++
			r.ws()
		default:
			r.fail("expected , or } after a member")
			return none, false
		}
	default:
		r.fail("Next outside an object")
		return none, false
	}
	if r.peek() != '"' {
		r.fail("expected a member name")
		return none, false
	}
	key, ok := r.str(r.key[:0])
	if !ok {
		return none, false
	}
	r.ws()
	if r.peek() != ':' {
		r.fail("expected : after a member name")
		return none, false
	}
	r.off++
	r.ws()
	r.state = 2
	return key, true
}

// str reads the string at the offset (a quote) and returns its content:
// a slice of the input when it needs no change, else unescaped into buf
// as encoding/json unescapes (invalid UTF-8 and lone surrogates become
// U+FFFD).
func (r *Reader[T]) str(buf []byte) (T, bool) {
	start := r.off + 1
	i := start
	for i < len(r.data) {
		for i < len(r.data) && plain[r.data[i]] {
			i++
		}
		if i == len(r.data) {
			break
		}
		c := r.data[i]
		switch {
		case c == '"':
			r.off = i + 1
			return r.data[start:i], true
		case c == '\\' || c < ' ':
			return r.strSlow(buf, start, i)
		case c < utf8.RuneSelf:
			i++
		default:
			rr, size := utf8.DecodeRuneInString(string(r.data[i:min(i+utf8.UTFMax, len(r.data))]))
			if rr == utf8.RuneError && size == 1 {
				return r.strSlow(buf, start, i)
			}
			i += size
		}
	}
	r.off = i
	r.fail("unterminated string")
	var zero T
	return zero, false
}

func (r *Reader[T]) strSlow(buf []byte, start, i int) (T, bool) {
	var zero T
	buf = append(buf, r.data[start:i]...)
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			r.off = i + 1
			r.key = buf[:0] // keep the grown scratch buffer
			return T(buf), true
		case c < ' ':
			r.off = i
			r.fail("control character in string")
			return zero, false
		case c == '\\':
			if i+1 >= len(r.data) {
				r.off = i
				r.fail("unterminated escape")
				return zero, false
			}
			switch e := r.data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				rr := r.u4(i)
				if rr < 0 {
					r.off = i
					r.fail("invalid \\u escape")
					return zero, false
				}
				i += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, r.u4(i)); dec != utf8.RuneError {
						buf = utf8.AppendRune(buf, dec)
						i += 6
						continue
					}
					rr = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, rr)
				continue
			default:
				r.off = i
				r.fail("invalid escape")
				return zero, false
			}
			i += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			rr, size := utf8.DecodeRuneInString(string(r.data[i:min(i+utf8.UTFMax, len(r.data))]))
			buf = utf8.AppendRune(buf, rr)
			i += size
		}
	}
	r.off = i
	r.fail("unterminated string")
	return zero, false
}

// u4 decodes the \uXXXX escape at i, -1 when there is none.
func (r *Reader[T]) u4(i int) rune {
	if i+6 > len(r.data) || r.data[i] != '\\' || r.data[i+1] != 'u' {
		return -1
	}
	var v rune
	for j := i + 2; j < i+6; j++ {
		c := r.data[j]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

func (r *Reader[T]) literal(lit string) {
	if len(r.data)-r.off < len(lit) || string(r.data[r.off:r.off+len(lit)]) != lit {
		r.fail("invalid literal")
		return
	}
	r.off += len(lit)
}

// number reads a number and returns its text, whether it is an integer
// (no fraction, no exponent) and false on a syntax error.
func (r *Reader[T]) number() (T, bool, bool) {
	start := r.off
	integer := true
	if r.peek() == '-' {
		r.off++
	}
	switch c := r.peek(); {
	case c == '0':
		r.off++
	case '1' <= c && c <= '9':
		r.digits()
	default:
		r.fail("invalid number")
		return r.data[start:r.off], false, false
	}
	if r.peek() == '.' {
		integer = false
		r.off++
		if !r.digits() {
			r.fail("invalid number")
			return r.data[start:r.off], false, false
		}
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		integer = false
		r.off++
		if c := r.peek(); c == '+' || c == '-' {
			r.off++
		}
		if !r.digits() {
			r.fail("invalid number")
			return r.data[start:r.off], false, false
		}
	}
	return r.data[start:r.off], integer, true
}

func (r *Reader[T]) digits() bool {
	start := r.off
	for r.off < len(r.data) && '0' <= r.data[r.off] && r.data[r.off] <= '9' {
		r.off++
	}
	return r.off > start
}

// magnitude returns the value of the digits of an integer's text (after
// its sign), false when it exceeds limit.
func magnitude[T Text](digits T, limit uint64) (uint64, bool) {
	var v uint64
	for i := 0; i < len(digits); i++ {
		d := uint64(digits[i] - '0')
		if v > (limit-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// String reads a member's value into *dst: a string is stored, null leaves
// *dst as it is, anything else is an error.
func (r *Reader[T]) String(dst *string) {
	switch r.peek() {
	case '"':
		if s, ok := r.str(r.key[:0]); ok {
			*dst = string(s)
		}
	case 'n':
		r.literal("null")
	default:
		r.fail("value is not a string")
	}
}

// Bool reads a member's value into *dst, as String does.
func (r *Reader[T]) Bool(dst *bool) {
	switch r.peek() {
	case 't':
		r.literal("true")
		if r.err == nil {
			*dst = true
		}
	case 'f':
		r.literal("false")
		if r.err == nil {
			*dst = false
		}
	case 'n':
		r.literal("null")
	default:
		r.fail("value is not a boolean")
	}
}

// Int64 reads a member's value into *dst, as String does: a number
// without fraction or exponent in int64's range.
func (r *Reader[T]) Int64(dst *int64) {
	if r.peek() == 'n' {
		r.literal("null")
		return
	}
	text, integer, ok := r.number()
	if !ok {
		return
	}
	if !integer {
		r.fail("number is not an integer")
		return
	}
	if text[0] == '-' {
		v, ok := magnitude(text[1:], math.MaxInt64+1)
		if !ok {
			r.fail("number out of range")
			return
		}
		*dst = int64(-v) // -(1<<63) wraps to math.MinInt64
		return
	}
	v, ok := magnitude(text, math.MaxInt64)
	if !ok {
		r.fail("number out of range")
		return
	}
	*dst = int64(v)
}

// Uint32 reads a member's value into *dst, as Int64 does; a minus sign is
// an error, even on zero (as strconv.ParseUint has it).
func (r *Reader[T]) Uint32(dst *uint32) {
	if r.peek() == 'n' {
		r.literal("null")
		return
	}
	text, integer, ok := r.number()
	if !ok {
		return
	}
	if !integer || text[0] == '-' {
		r.fail("number is not an unsigned integer")
		return
	}
	v, ok := magnitude(text, math.MaxUint32)
	if !ok {
		r.fail("number out of range")
		return
	}
	*dst = uint32(v)
}

// Skip reads a member's value of any kind, checking its syntax.
func (r *Reader[T]) Skip() { r.skip() }

func (r *Reader[T]) skip() {
	switch c := r.peek(); {
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		r.depth++
		if r.depth > maxDepth {
			r.fail("exceeded max depth")
			return
		}
		r.off++
		r.ws()
		if r.peek() == end {
			r.off++
			r.depth--
			return
		}
		for r.err == nil {
			if c == '{' {
				if r.peek() != '"' {
					r.fail("expected a member name")
					return
				}
				if _, ok := r.str(r.key[:0]); !ok {
					return
				}
				r.ws()
				if r.peek() != ':' {
					r.fail("expected : after a member name")
					return
				}
				r.off++
				r.ws()
			}
			r.skip()
			r.ws()
			switch r.peek() {
			case ',':
				r.off++
				r.ws()
			case end:
				r.off++
				r.depth--
				return
			default:
				r.fail("expected , or the end of an object or array")
			}
		}
	case c == '"':
		r.str(r.key[:0])
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		r.number()
	default:
		r.fail("expected a value")
	}
}

// Close checks that the object ended and only whitespace follows it, and
// returns the first error.
func (r *Reader[T]) Close() error {
	if r.err == nil && r.state != 3 {
		r.fail("object not read to its end")
	}
	if r.err != nil {
		return r.err
	}
	r.ws()
	if r.off != len(r.data) {
		r.fail("data after the top-level value")
	}
	return r.err
}

// Match returns the index of the name in names that encoding/json would
// decode a member named key into: the exact name, else the first equal
// under Unicode case folding (encoding/json's rule); -1 for none.
func Match[T Text](key T, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	k := string(key)
	for i, n := range names {
		if strings.EqualFold(k, n) {
			return i
		}
	}
	return -1
}
