package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

// record builds an info record at t with a source attribute.
func record(t time.Time, msg, source string) slog.Record {
	r := slog.NewRecord(t, slog.LevelInfo, msg, 0)
	r.AddAttrs(slog.String("source", source))
	return r
}

func countMsgs(t *testing.T, buf *bytes.Buffer) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, l := range lines(t, buf) {
		n[l["msg"].(string)]++
	}
	return n
}

func TestPerSource_FloodFromOneSourceIsBoundedAndCounted(t *testing.T) {
	var buf bytes.Buffer
	h := logging.PerSource(slog.NewJSONHandler(&buf, nil), logging.SourceLimitConfig{Burst: 5, Window: time.Minute})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		// Port and message vary: the source is the address.
		_ = h.Handle(ctx, record(t0.Add(time.Duration(i)*time.Millisecond), "register: unknown realm", "192.0.2.7:"+strconv.Itoa(1024+i%5000)))
	}
	_ = h.Handle(ctx, record(t0.Add(30*time.Second), "register: unknown realm", "198.51.100.1:5060")) // another source
	got := countMsgs(t, &buf)
	if got["register: unknown realm"] != 5+1 || got["log: suppressing lines from this source"] != 1 {
		t.Fatalf("lines = %v", got)
	}

	// Next window: the count of the previous one, then lines again.
	buf.Reset()
	_ = h.Handle(ctx, record(t0.Add(2*time.Minute), "register: unknown realm", "192.0.2.7:5060"))
	ls := lines(t, &buf)
	if len(ls) != 2 || ls[0]["msg"] != "log: lines from this source suppressed" || ls[0]["suppressed"] != float64(10_000-5) || ls[0]["source"] != "192.0.2.7" {
		t.Fatalf("lines = %v", ls)
	}
}

func TestPerSource_IPv6CountsPerSlash64(t *testing.T) {
	var buf bytes.Buffer
	h := logging.PerSource(slog.NewJSONHandler(&buf, nil), logging.SourceLimitConfig{Burst: 3, Window: time.Minute})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		src := "[2001:db8:1:2::" + strconv.FormatInt(int64(i+1), 16) + "]:5060"
		_ = h.Handle(context.Background(), record(t0, "register: unknown realm", src))
	}
	if got := countMsgs(t, &buf); got["register: unknown realm"] != 3 {
		t.Fatalf("lines = %v", got)
	}
}

func TestPerSource_OtherLinesPass(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.PerSource(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), logging.SourceLimitConfig{Burst: 1}))
	for range 10 {
		log.Info("no source")
		log.Debug("debug", "source", "192.0.2.1:5060")
		log.Warn("warning", "source", "192.0.2.1:5060")
	}
	got := countMsgs(t, &buf)
	if got["no source"] != 10 || got["debug"] != 10 || got["warning"] != 10 {
		t.Fatalf("lines = %v", got)
	}
}

func TestPerSource_WithAttributesNameTheSource(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.PerSource(slog.NewJSONHandler(&buf, nil), logging.SourceLimitConfig{Burst: 2}))
	for i := range 10 {
		log.With("call_id", strconv.Itoa(i), "source", "192.0.2.9:5060").Info("register: refused by guard")
	}
	got := countMsgs(t, &buf)
	if got["register: refused by guard"] != 2 || got["log: suppressing lines from this source"] != 1 {
		t.Fatalf("lines = %v", got)
	}
	for _, l := range lines(t, &buf) {
		if l["msg"] == "log: suppressing lines from this source" && l["call_id"] != nil {
			t.Errorf("the note carries a request's attributes: %v", l)
		}
	}
}

func TestPerSource_TableIsBounded(t *testing.T) {
	var buf bytes.Buffer
	h := logging.PerSource(slog.NewJSONHandler(&buf, nil), logging.SourceLimitConfig{Burst: 1, MaxSources: 10})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Source 0 floods, then 10 others push it out: its count is written
	// when it is forgotten.
	for range 5 {
		_ = h.Handle(context.Background(), record(t0, "flood", "10.0.0.1:5060"))
	}
	for i := range 10 {
		_ = h.Handle(context.Background(), record(t0, "other", "10.0.1."+strconv.Itoa(i)+":5060"))
	}
	var found bool
	for _, l := range lines(t, &buf) {
		if l["msg"] == "log: lines from this source suppressed" && l["source"] == "10.0.0.1" && l["suppressed"] == float64(4) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no count for the forgotten source:\n%s", buf.String())
	}
}

func TestNew_SourceLimitOption(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "info", logging.Options{SourceLimit: 3})
	for i := range 50 {
		log.With("call_id", strconv.Itoa(i), "source", "192.0.2.1:5060", "transport", "udp").Info("register: unknown realm", "realm", "x.example")
	}
	if got := countMsgs(t, &buf); got["register: unknown realm"] != 3 || got["log: suppressing lines from this source"] != 1 {
		t.Fatalf("lines = %v", got)
	}
	buf.Reset()
	log = logging.New(&buf, "info")
	for range 50 {
		log.Info("register: unknown realm", "source", "192.0.2.1:5060")
	}
	if got := countMsgs(t, &buf); got["register: unknown realm"] != 50 {
		t.Fatalf("without the option: lines = %v", got)
	}
}

func TestPerSource_UnlimitedLinesPassAndDoNotShow(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "info", logging.Options{SourceLimit: 1})
	for range 10 {
		log.With("source", "192.0.2.1:5060").Info("register: registered", "expires", 3600, logging.Unlimited)
	}
	if got := countMsgs(t, &buf); got["register: registered"] != 10 {
		t.Fatalf("lines = %v", got)
	}
	if strings.Contains(buf.String(), "unlimited") {
		t.Errorf("the marker is written:\n%s", buf.String())
	}
}
