// Package drachtioserver runs a real drachtio-server for end-to-end tests of the drachtio front,
// as a jambonz SBC runs it: SIP on loopback (UDP and TCP on one port), the control port the
// service connects to, optionally an external IP reported in its hostports. The binary comes
// from testenv.DrachtioBin; tests without one skip (or fail under CI).
//
// What a real server cannot do on demand (frames split at chosen bytes, protocol errors,
// counting what it relayed) stays with the in-process stand-in, internal/testenv/drachtiostub.
package drachtioserver

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

// Options configure the server.
type Options struct {
	Control    string // ip:port of the control port
	Secret     string
	SIP        string // ip:port of the SIP contact (udp and tcp)
	ExternalIP string // reported in hostports and used in Via/Contact when set
}

// Server is a running drachtio-server process.
type Server struct {
	bin  string
	dir  string
	opts Options

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	logs      bytes.Buffer
	hostports string
	local     string
}

// Start runs drachtio-server with opts and waits until it accepts an authenticated control
// connection; it is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{bin: testenv.DrachtioBin(t), dir: t.TempDir(), opts: opts}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("drachtio-server logs:\n%s", tail(s.Logs(), 60))
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Hostports is the hostports field of the server's authenticate answer, e.g.
// "tcp/203.0.113.10:5060,udp/203.0.113.10:5060".
func (s *Server) Hostports() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostports
}

// LocalHostports is the local-hostports field of the authenticate answer.
func (s *Server) LocalHostports() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

// Logs returns what the server printed so far (across restarts).
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Restart stops the server (SIGTERM, as an operator or systemd would) and starts it again,
// with externalIP as its external IP when not empty. Connected clients see their control
// connection end and must reconnect.
func (s *Server) Restart(t testing.TB, externalIP string) {
	t.Helper()
	s.Stop()
	if externalIP != "" {
		s.opts.ExternalIP = externalIP
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the server and waits for it (SIGKILL after 10 s).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *Server) config() string {
	contact := "<contact>sip:" + s.opts.SIP + ";transport=udp,tcp</contact>"
	if s.opts.ExternalIP != "" {
		contact = `<contact external-ip="` + s.opts.ExternalIP + `">sip:` + s.opts.SIP + ";transport=udp,tcp</contact>"
	}
	host, port, _ := net.SplitHostPort(s.opts.Control)
	return `<drachtio>
  <admin port="` + port + `" secret="` + s.opts.Secret + `">` + host + `</admin>
  <sip><contacts>` + contact + `</contacts></sip>
  <cdrs>false</cdrs>
  <logging><console/><loglevel>info</loglevel><sofia-loglevel>0</sofia-loglevel></logging>
</drachtio>
`
}

func (s *Server) start() error {
	conf := filepath.Join(s.dir, "drachtio.conf.xml")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-f", conf)
	cmd.Dir = s.dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("drachtio-server: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		_ = cmd.Wait()
		close(done)
	}()
	// Ready when an authenticate on the control port is answered OK. The server may take a
	// moment to bind; an exit before that is a start-up failure (bad config, libraries).
	deadline := time.Now().Add(15 * time.Second)
	for {
		hp, local, err := authenticate(s.opts.Control, s.opts.Secret)
		if err == nil {
			s.mu.Lock()
			s.hostports, s.local = hp, local
			s.mu.Unlock()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("drachtio-server exited during start-up: %s", tail(s.Logs(), 30))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drachtio-server not ready on %s after 15s: %v\n%s", s.opts.Control, err, tail(s.Logs(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authenticate opens a control connection, authenticates and returns the hostports and local
// hostports of the answer ("<id>|response|<req id>|OK|<hostports>|<version>|<local>").
func authenticate(addr, secret string) (string, string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	msg := newID() + "|authenticate|" + secret + "|"
	if _, err := io.WriteString(c, strconv.Itoa(len(msg))+"#"+msg); err != nil {
		return "", "", err
	}
	r := bufio.NewReader(c)
	digits, err := r.ReadString('#')
	if err != nil {
		return "", "", err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(digits, "#"))
	if err != nil {
		return "", "", fmt.Errorf("length prefix %q", digits)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", "", err
	}
	f := strings.Split(string(buf), "|")
	if len(f) < 5 || f[1] != "response" || f[3] != "OK" {
		return "", "", fmt.Errorf("authenticate answered %q", buf)
	}
	local := ""
	if len(f) > 6 {
		local = f[6]
	}
	return f[4], local, nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
