package native

import (
	"context"
	"log/slog"
)

// stackLogger keeps sipgo's own logging at warnings and above: it logs whole
// raw messages at debug/error, which floods under attack.
func stackLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{Handler: l.Handler(), min: slog.LevelWarn})
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
