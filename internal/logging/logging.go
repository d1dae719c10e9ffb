// Package logging builds the service's log/slog JSON logger.
package logging

import (
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// credentialHeader matches SIP credential headers inside logged strings: raw
// messages (the SIP stack logs whole messages it cannot parse), Go-formatted
// maps ("authorization:Digest ...") and JSON ("Authorization": "Digest ...").
// Names match in any case, with or without blanks before the colon, and the
// value runs to the end of the line plus any folded continuation lines
// (RFC 3261 7.3.1: a line starting with a blank continues the header).
var credentialHeader = regexp.MustCompile(`(?i)((?:proxy-)?authorization"?[ \t]*[:=])[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*`)

// Redact removes credentials from a string that may hold a raw SIP message.
func Redact(s string) string {
	if !containsFold(s, "authorization") {
		return s
	}
	return credentialHeader.ReplaceAllString(s, "$1 <redacted>")
}

// containsFold reports whether s contains the lower-case ASCII word sub in
// any case, without allocating (most logged values hold no credential).
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// isCredentialKey reports attribute keys whose whole value is a credential.
func isCredentialKey(k string) bool {
	k = strings.ToLower(k)
	return k == "authorization" || k == "proxy-authorization" || k == "proxy_authorization"
}

// maxValue bounds logged string values: the SIP stack logs whole raw
// messages, which must not flood the log under attack.
const maxValue = 512

// Options are the logger's settings beyond the level.
type Options struct {
	// SourceLimit is how many info lines one source (the "source"
	// attribute: an IPv4 address or an IPv6 /64) may write per minute
	// before its lines are suppressed and counted (LOG_SOURCE_LIMIT);
	// 0 disables the limit.
	SourceLimit int
}

// New returns a JSON logger at level ("debug", "info", "warn", "error").
func New(w io.Writer, level string, opts ...Options) *slog.Logger {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: replaceAttr})
	var limited slog.Handler = RateLimit(h, 10, time.Second)
	if o.SourceLimit > 0 {
		limited = PerSource(limited, SourceLimitConfig{Key: SourceKey, Burst: o.SourceLimit, Window: time.Minute})
	}
	return slog.New(Deferred(limited))
}

// replaceAttr redacts credentials and bounds the length of logged values.
func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	if isCredentialKey(a.Key) {
		a.Value = slog.StringValue("<redacted>")
		return a
	}
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(clip(Redact(a.Value.String())))
	case slog.KindAny:
		// Values that can carry a raw message: errors (printed as their
		// text anyway), bytes and headers maps. Other values keep their
		// JSON encoding.
		switch v := a.Value.Any().(type) {
		case error:
			a.Value = slog.StringValue(clip(Redact(v.Error())))
		case []byte:
			a.Value = slog.StringValue(clip(Redact(string(v))))
		case map[string]string:
			a.Value = slog.AnyValue(redactMap(v))
		}
	}
	return a
}

// redactMap copies headers maps (the webhook payload's) with credential
// entries redacted.
func redactMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if isCredentialKey(k) {
			v = "<redacted>"
		}
		out[k] = clip(Redact(v))
	}
	return out
}

func clip(s string) string {
	if len(s) > maxValue {
		return s[:maxValue] + "...(truncated)"
	}
	return s
}
