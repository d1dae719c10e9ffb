package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// nodeSession drives test/interop/node/client.js: one command a line on its stdin, one JSON
// result a line on its stdout.
type nodeSession struct {
	stdin   io.WriteCloser
	results chan nodeResult
	mu      sync.Mutex
	stderr  bytes.Buffer
}

type nodeResult struct {
	Step      string `json:"step"`
	OK        bool   `json:"ok"`
	Status    int    `json:"status"`
	Cause     string `json:"cause"`
	Algorithm string `json:"algorithm"`
}

// nodeDir is where package.json and the node_modules that `npm ci` installs live.
func nodeDir(t *testing.T) string {
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"jssip", "sip.js", "ws"} {
		if !fileExists(filepath.Join(dir, "node_modules", pkg, "package.json")) {
			unavailable(t, "%s/node_modules/%s missing: run `npm ci` there (scripts/test.sh does)", dir, pkg)
		}
	}
	return dir
}

// nodeClient starts the JS stack kind (jssip, sipjs) over ws or wss.
func nodeClient(kind, transport string) func(t *testing.T, s *server, user, password string) session {
	return func(t *testing.T, s *server, user, password string) session {
		node := need(t, "node", "nodejs")
		dir := nodeDir(t)
		port := portWS
		if transport == "wss" {
			port = portWSS
		}
		settings, _ := json.Marshal(map[string]any{
			"server": fmt.Sprintf("%s://127.0.0.1:%d", transport, port), "domain": realm,
			"user": user, "password": password, "expires": 60,
			"timeoutMs": stepTimeout().Milliseconds(),
		})
		cmd := exec.Command(node, filepath.Join(dir, "client.js"), kind)
		cmd.Dir = dir
		// NODE_EXTRA_CA_CERTS: trust the test certificate for wss.
		cmd.Env = []string{"PATH=/usr/bin:/bin", "INTEROP_CLIENT=" + string(settings),
			"NODE_EXTRA_CA_CERTS=" + s.cert.CertFile}
		ns := &nodeSession{results: make(chan nodeResult, 8)}
		var err error
		if ns.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = writerFunc(func(p []byte) (int, error) {
			ns.mu.Lock()
			defer ns.mu.Unlock()
			return ns.stderr.Write(p)
		})
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var r nodeResult
				if json.Unmarshal(sc.Bytes(), &r) == nil {
					ns.results <- r
				}
			}
			close(ns.results)
		}()
		t.Cleanup(func() {
			_ = ns.stdin.Close() // client.js quits at the end of its input
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		return ns
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (ns *nodeSession) do(step string) stepResult {
	if _, err := fmt.Fprintln(ns.stdin, step); err != nil {
		return stepResult{detail: fmt.Sprintf("client gone: %v", err)}
	}
	// client.js bounds each step itself (timeoutMs); this only guards against a hung process.
	select {
	case r, ok := <-ns.results:
		if !ok {
			return stepResult{detail: "client exited"}
		}
		return stepResult{ok: r.OK, detail: fmt.Sprintf("status %d, cause %q, algorithm %q", r.Status, r.Cause, r.Algorithm)}
	case <-time.After(stepTimeout() + 5*time.Second):
		return stepResult{detail: "no result from client.js"}
	}
}

func (ns *nodeSession) register() stepResult   { return ns.do("register") }
func (ns *nodeSession) refresh() stepResult    { return ns.do("refresh") }
func (ns *nodeSession) unregister() stepResult { return ns.do("unregister") }
func (ns *nodeSession) logs() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.stderr.String()
}
