package native

import (
	"context"
	"log/slog"
	"strings"

	"github.com/emiago/sipgo/sip"
)

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

// levelFloor drops records below min.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= l.min && l.Handler.Enabled(ctx, level)
}

func (l levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{Handler: l.Handler.WithAttrs(attrs), min: l.min}
}

func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{Handler: l.Handler.WithGroup(name), min: l.min}
}
