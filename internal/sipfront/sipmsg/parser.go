// Package sipmsg is the SIP message handling every front shares: the
// lenient parser that turns wire text into the messages handlers see, and
// the response built from a handler's answer.
package sipmsg

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// NewParser returns the lenient SIP parser: every front parses with it, so
// handlers get the same kind of message whichever front delivered it.
func NewParser() *sip.Parser { return sip.NewParser(sip.WithHeadersParsers(lenientParsers())) }

// lenientParsers wraps sipgo's header parsers so that an unparseable
// To/From/Contact does not make the stack drop the whole message without an
// answer: the header is kept as a generic one, typed accessors return nil and
// the handler answers 400/403 with a reason.
func lenientParsers() sip.HeadersParser {
	out := sip.HeadersParser{}
	for name, p := range sip.DefaultHeadersParser() {
		switch name {
		case "to", "t", "from", "f", "contact", "m":
			out[name] = lenient(canonical(name), p)
		default:
			out[name] = p
		}
	}
	return out
}

func canonical(name string) string {
	switch name {
	case "to", "t":
		return "To"
	case "from", "f":
		return "From"
	}
	return "Contact"
}

func lenient(name string, p sip.HeaderParser) sip.HeaderParser {
	return func(headerName []byte, data string) (sip.Header, error) {
		h, err := p(headerName, data)
		if err == nil {
			return h, nil
		}
		// sipgo signals a comma-separated list with an unexported error
		// type; it must reach its caller untouched.
		if h != nil && err.Error() == "comma detected" {
			return h, err
		}
		return sip.NewHeader(name, strings.TrimSpace(data)), nil
	}
}
