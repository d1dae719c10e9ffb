// Package logging builds the service's log/slog JSON logger.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

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
				if s := a.Value.String(); len(s) > maxValue {
					a.Value = slog.StringValue(s[:maxValue] + "...(truncated)")
				}
			}
			return a
		},
	})
	return slog.New(h)
}
