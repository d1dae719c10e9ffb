package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestRateLimit_RepeatedErrorsAreSuppressedAndCounted(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.RateLimit(slog.NewJSONHandler(&buf, nil), 3, time.Hour)).With("component", "x")
	for range 10 {
		log.Error("redis: down")
	}
	log.Warn("other message")
	log.Info("info passes")
	log.Info("info passes")
	got := lines(t, &buf)
	count := map[string]int{}
	for _, l := range got {
		count[l["msg"].(string)]++
	}
	if count["redis: down"] != 3 || count["other message"] != 1 || count["info passes"] != 2 {
		t.Errorf("written = %v", count)
	}
}

func TestRateLimit_NextWindowReportsSuppressed(t *testing.T) {
	var buf bytes.Buffer
	h := logging.RateLimit(slog.NewJSONHandler(&buf, nil), 1, time.Second)
	// Records with their own times: the windows do not depend on how fast
	// the test runs (it runs under -race too).
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 2 * time.Second} {
		_ = h.Handle(context.Background(), slog.NewRecord(t0.Add(at), slog.LevelError, "flood", 0))
	}
	got := lines(t, &buf)
	if len(got) != 2 {
		t.Fatalf("lines = %v", got)
	}
	if got[1]["suppressed"] != float64(2) {
		t.Errorf("second line = %v, want suppressed 2", got[1])
	}
}
