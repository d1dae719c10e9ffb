package registrar

import "strings"

// compactForms maps SIP compact header names (RFC 3261 §7.3.3 and later
// RFCs) to their full names, so a webhook cannot slip a Via or a second
// Content-Length into our answer as "v" or "l".
var compactForms = map[string]string{
	"a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
	"e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact",
	"k": "supported", "l": "content-length", "m": "contact", "n": "identity-info",
	"o": "event", "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events",
	"v": "via", "x": "session-expires", "y": "identity",
}

// hookHeadersAllowed are the headers a registration webhook may add to our
// refusal besides X-* ones: informational headers without a say in routing,
// transactions or framing (docs/security.md).
var hookHeadersAllowed = map[string]bool{
	"reason":      true,
	"warning":     true,
	"retry-after": true,
	"error-info":  true,
}

// hookHeaderAllowed reports whether a webhook answer may set header name,
// compared case-insensitively under its full name.
func hookHeaderAllowed(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if full, ok := compactForms[n]; ok {
		n = full
	}
	return strings.HasPrefix(n, "x-") && len(n) > 2 || hookHeadersAllowed[n]
}
