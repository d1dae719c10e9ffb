package testenv

import (
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
)

var termSignal = syscall.SIGTERM

// TCPProxy forwards a loopback port to a real server; Cut makes the server
// unreachable (open connections reset, new ones refused) and Restore brings
// it back, to test outages of a shared service without stopping it.
type TCPProxy struct {
	t      testing.TB // nil when built by ListenTCPProxy
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// StartTCPProxy listens on 127.0.0.1 (random port) and forwards to target;
// it is cut when the test ends.
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	p, err := ListenTCPProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	p.t = t
	t.Cleanup(p.Cut)
	return p
}

// ListenTCPProxy is StartTCPProxy outside a test (benchmarks): the caller
// cuts it.
func ListenTCPProxy(target string) (*TCPProxy, error) {
	p := &TCPProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *TCPProxy) Addr() string { return p.addr }

func (p *TCPProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *TCPProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// Cut closes the listener and every forwarded connection.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Restore listens again on the same address.
func (p *TCPProxy) Restore() {
	p.t.Helper()
	if err := p.Relisten(); err != nil {
		p.t.Fatalf("proxy restore: %v", err)
	}
}

// Relisten is Restore returning its error (for proxies built by
// ListenTCPProxy).
func (p *TCPProxy) Relisten() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}
