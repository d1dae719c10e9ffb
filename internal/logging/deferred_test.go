package logging

import (
	"bytes"
	"log/slog"
	"testing"
)

// Deferred must write exactly what the wrapped handler writes with eager With.
func TestDeferred_SameOutputAsEagerWith(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"no attributes", func(l *slog.Logger) { l.Info("hello") }},
		{"record attributes only", func(l *slog.Logger) { l.Info("hello", "a", 1) }},
		{"with then record attributes, in order", func(l *slog.Logger) {
			l.With("call_id", "c1", "source", "1.2.3.4:5060").With("transport", "udp").Info("register", "status", 200)
		}},
		{"with, group, more attributes", func(l *slog.Logger) {
			l.With("call_id", "c1").WithGroup("g").With("x", 1).Warn("grouped", "y", 2)
		}},
		{"below the level nothing is written", func(l *slog.Logger) { l.With("k", "v").Debug("quiet") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eager, lazy bytes.Buffer
			opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			tt.log(slog.New(slog.NewJSONHandler(&eager, opts)))
			tt.log(slog.New(Deferred(slog.NewJSONHandler(&lazy, opts))))
			if eager.String() != lazy.String() {
				t.Fatalf("deferred wrote\n%s\nwant\n%s", lazy.String(), eager.String())
			}
		})
	}
}
