package cli

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

// TestEventsStreamFiltersAndFollows serves the events stream of an
// in-process bus and follows it with the client, as `cli events` does.
func TestEventsStreamFiltersAndFollows(t *testing.T) {
	bus := &events.Bus{}
	path := filepath.Join(t.TempDir(), "cli.sock")
	srv := NewServer(path, quiet())
	RegisterEvents(srv, bus)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	cmd, err := parseEventsArgs([]string{"--type", "register,expire", "--realm=a.org"})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	fctx, stop := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	go func() { followed <- Follow(fctx, path, cmd, pw); pw.Close() }()
	lines := bufio.NewScanner(pr)

	// Broadcast until the subscription is in place (the first line seen).
	probe := []byte(`{"type":"register","realm":"a.org","aor":"probe@a.org"}`)
	got := make(chan string)
	go func() {
		for lines.Scan() {
			got <- lines.Text()
		}
		close(got)
	}()
	for first := false; !first; {
		bus.Broadcast(probe)
		select {
		case <-got:
			first = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, raw := range []string{
		`{"type":"refresh","realm":"a.org"}`,
		`{"type":"expire","realm":"b.org"}`,
		`{"type":"expire","realm":"a.org","aor":"x@a.org"}`,
	} {
		bus.Broadcast([]byte(raw))
	}
	for line := range got {
		if strings.Contains(line, "probe@") {
			continue
		}
		if line != `{"type":"expire","realm":"a.org","aor":"x@a.org"}` {
			t.Fatalf("streamed %s", line)
		}
		break
	}
	stop()
	if err := <-followed; err != nil {
		t.Fatalf("Follow after Ctrl-C: %v", err)
	}
}

func TestEventsArgs(t *testing.T) {
	for _, bad := range [][]string{{"--type", "expired"}, {"--realm"}, {"--color", "x"}} {
		if _, err := parseEventsArgs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if code, _, stderr := run(filepath.Join(t.TempDir(), "none.sock"), "events"); code != 1 || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("events without a service: %d %q", code, stderr)
	}
}

func TestEventsOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cli.sock")
	srv := NewServer(path, quiet())
	RegisterEvents(srv, nil)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	if code, _, stderr := run(path, "events"); code != 1 || !strings.Contains(stderr, "REGISTRATION_EVENTS=off") {
		t.Fatalf("events off: %d %q", code, stderr)
	}
}
