package logging_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

func TestThrottle_OneLinePerKeyAndInterval(t *testing.T) {
	var buf bytes.Buffer
	th := logging.NewThrottle(slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
	th.Warn("accept:tcp", "sip: accept failed, retrying")
	th.Warn("accept:tcp", "sip: accept failed, retrying")
	th.Info("strict:505", "sip: refusing malformed request")
	got := lines(t, &buf)
	if len(got) != 2 || got[0]["msg"] != "sip: accept failed, retrying" || got[1]["msg"] != "sip: refusing malformed request" {
		t.Fatalf("lines: %v", got)
	}
}
