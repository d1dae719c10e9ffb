// Package logging builds the service's log/slog JSON logger.
package logging

import (
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// credentialHeader matches SIP credential headers inside logged raw messages
// (the SIP stack logs whole messages it cannot parse).
var credentialHeader = regexp.MustCompile(`(?i)((?:proxy-)?authorization\s*:)[^\r\n]*`)

// Redact removes credentials from a string that may hold a raw SIP message.
func Redact(s string) string {
	if !strings.Contains(s, "uthorization") && !strings.Contains(s, "UTHORIZATION") {
		return s
	}
	return credentialHeader.ReplaceAllString(s, "$1 <redacted>")
}

// maxValue bounds logged string values: the SIP stack logs whole raw
// messages, which must not flood the log under attack.
const maxValue = 512

// New returns a JSON logger at level ("debug", "info", "warn", "error").
func New(w io.Writer, level string) *slog.Logger {
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
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindString {
				s := Redact(a.Value.String())
				if len(s) > maxValue {
					s = s[:maxValue] + "...(truncated)"
				}
				a.Value = slog.StringValue(s)
			}
			return a
		},
	})
	return slog.New(Deferred(RateLimit(h, 10, time.Second)))
}
