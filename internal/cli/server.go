// Package cli is the runtime command line of the service: a unix socket
// server (SBC_SOCKET_PATH, mode 0600) speaking newline-delimited JSON, with
// a registry of commands other features add to, and the client run by
// `sbc-sip-sidecar cli ...`.
//
// The wire format is the original's: a request is one JSON object per line,
// {"action": "...", "key"?, "value"?, "item"?, "server"?}; the answer is one
// JSON object per line with "success": true plus the command's fields, or
// "success": false and "error".
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"time"
)

// Command is one request.
type Command struct {
	Action string          `json:"action"`
	Key    string          `json:"key,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
	Item   string          `json:"item,omitempty"`
	Server string          `json:"server,omitempty"`
}

// Result holds the fields of a successful answer.
type Result map[string]any

// HandlerFunc runs a command. An error is answered as "error" with
// "success": false; its message is shown to the operator.
type HandlerFunc func(ctx context.Context, cmd Command) (Result, error)

// Server serves the runtime commands on a unix socket.
type Server struct {
	path string
	log  *slog.Logger

	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	streams  map[string]StreamFunc
}

// maxLine bounds a request line; commands are tiny.
const maxLine = 64 << 10

// idleTimeout closes connections that send nothing.
const idleTimeout = 60 * time.Second

// NewServer returns a server for the socket at path.
func NewServer(path string, log *slog.Logger) *Server {
	return &Server{path: path, log: log, handlers: map[string]HandlerFunc{}}
}

// Register adds (or replaces) the command name.
func (s *Server) Register(name string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[name] = h
}

// Commands lists the registered command names.
func (s *Server) Commands() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.handlers))
	for k := range s.handlers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Listen creates the socket (replacing a stale one) with mode 0600.
func (s *Server) Listen() (net.Listener, error) {
	if fi, err := os.Lstat(s.path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("cli: %s exists and is not a socket", s.path)
		}
		// A socket nobody answers on is left over from a previous run.
		if c, err := net.DialTimeout("unix", s.path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("cli: another process is serving %s", s.path)
		}
		if err := os.Remove(s.path); err != nil {
			return nil, fmt.Errorf("cli: removing stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return nil, fmt.Errorf("cli: listen: %w", err)
	}
	if err := os.Chmod(s.path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cli: chmod socket: %w", err)
	}
	return ln, nil
}

// Serve accepts connections on ln until ctx ends, then closes them and
// removes the socket.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer func() {
		wg.Wait()
		_ = os.Remove(s.path)
	}()
	s.log.Info("cli: listening", "socket", s.path)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("cli: accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxLine)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if !sc.Scan() {
			if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
				_ = enc.Encode(map[string]any{"success": false, "error": "command too long"})
			}
			return
		}
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			continue
		}
		if s.serveStream(ctx, c, sc, line) {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := enc.Encode(s.Handle(ctx, line)); err != nil {
			return
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Handle runs one JSON request line and returns the answer object.
func (s *Server) Handle(ctx context.Context, line []byte) map[string]any {
	var cmd Command
	if err := json.Unmarshal(line, &cmd); err != nil {
		return map[string]any{"success": false, "error": "invalid command: not a JSON object"}
	}
	s.mu.RLock()
	h, ok := s.handlers[cmd.Action]
	s.mu.RUnlock()
	if !ok {
		return map[string]any{"success": false, "error": "unknown action: " + cmd.Action}
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	res, err := h(ctx, cmd)
	if err != nil {
		s.log.Warn("cli: command failed", "action", cmd.Action, "err", err)
		return map[string]any{"success": false, "error": err.Error()}
	}
	out := map[string]any{}
	for k, v := range res {
		out[k] = v
	}
	out["success"] = true
	s.log.Info("cli: command", "action", cmd.Action, "key", cmd.Key, "server", cmd.Server)
	return out
}
