package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

// StreamFunc serves a streaming command: after the success answer it
// sends lines (one JSON value each) until ctx ends or it returns.
type StreamFunc func(ctx context.Context, cmd Command, send func(line []byte) error) error

// RegisterStream adds (or replaces) the streaming command name.
func (s *Server) RegisterStream(name string, h StreamFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams == nil {
		s.streams = map[string]StreamFunc{}
	}
	s.streams[name] = h
}

// serveStream runs line when it is a streaming command and reports whether
// it was; the connection is then the stream's until either side closes it.
func (s *Server) serveStream(ctx context.Context, c net.Conn, sc *bufio.Scanner, line []byte) bool {
	var cmd Command
	if json.Unmarshal(line, &cmd) != nil {
		return false
	}
	s.mu.RLock()
	h, ok := s.streams[cmd.Action]
	s.mu.RUnlock()
	if !ok {
		return false
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The client closing its end ends the stream.
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		for sc.Scan() {
		}
		cancel()
	}()
	send := func(b []byte) error {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Write(append(b, '\n'))
		return err
	}
	s.log.Info("cli: stream", "action", cmd.Action, "key", cmd.Key, "item", cmd.Item)
	if err := h(ctx, cmd, send); err != nil && ctx.Err() == nil {
		answer, _ := json.Marshal(map[string]any{"success": false, "error": err.Error()})
		_ = send(answer)
	}
	return true
}

// EventStream is the registration event stream (Redis pub/sub or the
// in-process bus).
type EventStream interface {
	Subscribe(ctx context.Context) (<-chan []byte, error)
}

// RegisterEvents adds the "events" stream: Key is a realm, Item a
// comma-separated list of types (empty: all). With stream nil (events
// off) it answers an error.
func RegisterEvents(srv *Server, stream EventStream) {
	srv.RegisterStream("events", func(ctx context.Context, cmd Command, send func([]byte) error) error {
		if stream == nil {
			return errors.New("registration events are off (REGISTRATION_EVENTS=off)")
		}
		filter, err := parseFilter(cmd.Item, cmd.Key)
		if err != nil {
			return err
		}
		ch, err := stream.Subscribe(ctx)
		if err != nil {
			return fmt.Errorf("subscribing to registration events: %w", err)
		}
		ok, _ := json.Marshal(map[string]any{"success": true, "stream": "events"})
		if err := send(ok); err != nil {
			return nil
		}
		for raw := range ch {
			if !filter.MatchJSON(raw) {
				continue
			}
			if err := send(raw); err != nil {
				return nil // the client went away
			}
		}
		return nil
	})
}

func parseFilter(types, realm string) (events.Filter, error) {
	f := events.Filter{Realm: realm}
	for _, name := range strings.Split(types, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		t, err := events.ParseType(name)
		if err != nil {
			return f, err
		}
		f.Types = append(f.Types, t)
	}
	return f, nil
}

// parseEventsArgs reads `events [--type T[,T]]... [--realm R]`.
func parseEventsArgs(args []string) (Command, error) {
	cmd := Command{Action: "events"}
	var types []string
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if !hasValue {
			if i+1 >= len(args) {
				return cmd, fmt.Errorf("%s needs a value", name)
			}
			value = args[i+1]
			i++
		}
		switch name {
		case "--type", "-type":
			types = append(types, value)
		case "--realm", "-realm":
			cmd.Key = value
		default:
			return cmd, fmt.Errorf("events: unknown option %q (--type, --realm)", name)
		}
	}
	cmd.Item = strings.Join(types, ",")
	if _, err := parseFilter(cmd.Item, cmd.Key); err != nil {
		return cmd, err
	}
	return cmd, nil
}

// Follow sends a streaming command and copies the stream's lines to w
// until the service closes it or ctx ends.
func Follow(ctx context.Context, path string, cmd Command, w io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "unix", path)
	if err != nil {
		return dialError(dctx, path, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	line, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(ClientTimeout))
	if _, err := c.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("sending command: %w", err)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	first, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	var answer map[string]any
	if err := json.Unmarshal(first, &answer); err != nil {
		return fmt.Errorf("invalid answer from the service: %w", err)
	}
	if ok, _ := answer["success"].(bool); !ok {
		msg, _ := answer["error"].(string)
		return errors.New(msg)
	}
	_ = c.SetDeadline(time.Time{})
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			if _, werr := w.Write(b); werr != nil {
				return werr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("the service closed the stream")
		}
	}
}
