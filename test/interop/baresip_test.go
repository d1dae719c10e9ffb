package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// regint is the registration interval (s) the timer-driven clients ask for: baresip refreshes
// after 90% of the granted time, so a short one keeps the refresh step short.
// INTEROP_REGINT changes it.
func regint() int {
	if n, err := strconv.Atoi(os.Getenv("INTEROP_REGINT")); err == nil && n > 0 {
		return n
	}
	return 3
}

// baresipSession runs baresip headless (account.so, menu.so for commands, ctrl_tcp.so to
// drive it and read its events) with one account.
type baresipSession struct {
	cmd    *exec.Cmd
	conn   net.Conn
	events chan baresipEvent
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan struct{}
	// account is the accounts line given to uanew.
	account string
}

type baresipEvent struct {
	Event bool   `json:"event"`
	Type  string `json:"type"`
	Param string `json:"param"`
}

// ctrl_tcp ports, one per transport so that a baresip still closing never holds the next one's.
var baresipCtrlPort = map[string]int{"udp": 14441, "tcp": 14442, "tls": 14443}

func baresipClient(transport string) func(t *testing.T, s *server, user, password string) session {
	return func(t *testing.T, s *server, user, password string) session {
		bin := need(t, "baresip", "baresip-core")
		dir := t.TempDir()
		port := portSIP
		if transport == "tls" {
			port = portTLS
		}
		ctrl := fmt.Sprintf("127.0.0.1:%d", baresipCtrlPort[transport])
		// sip_cafile: baresip verifies the service's certificate against the test CA.
		config := fmt.Sprintf(`poll_method poll
sip_listen 127.0.0.1:0
sip_cafile %s
net_interface 127.0.0.1
module_path /usr/lib/baresip/modules
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen %s
`, s.cert.CertFile, ctrl)
		account := fmt.Sprintf("<sip:%s@%s;transport=%s>;auth_pass=%s;outbound=\"sip:127.0.0.1:%d;transport=%s\";regint=%d\n",
			user, realm, transport, password, port, transport, regint())
		// No account at start: it is created with the uanew command once ctrl_tcp is connected,
		// so that every REGISTER event of the account reaches the test.
		for name, text := range map[string]string{"config": config, "accounts": ""} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		bs := &baresipSession{events: make(chan baresipEvent, 32), exited: make(chan struct{})}
		// -s: SIP trace on stdout, for failure messages.
		bs.cmd = exec.Command(bin, "-f", dir, "-s")
		bs.cmd.Stdout = writerFunc(bs.write)
		bs.cmd.Stderr = bs.cmd.Stdout
		if err := bs.cmd.Start(); err != nil {
			t.Fatalf("baresip: %v", err)
		}
		go func() { _ = bs.cmd.Wait(); close(bs.exited) }()
		t.Cleanup(func() {
			if bs.conn != nil {
				bs.conn.Close()
			}
			select {
			case <-bs.exited:
			default:
				_ = bs.cmd.Process.Kill()
				<-bs.exited
			}
		})
		if err := waitFor("baresip ctrl_tcp", func() (bool, error) {
			c, err := net.Dial("tcp", ctrl)
			if err != nil {
				return false, err
			}
			bs.conn = c
			return true, nil
		}); err != nil {
			t.Fatalf("baresip: %v\n%s", err, bs.logs())
		}
		go bs.readEvents()
		bs.account = strings.TrimSpace(account)
		return bs
	}
}

func (bs *baresipSession) write(p []byte) (int, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.out.Write(p)
}

func (bs *baresipSession) logs() string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.out.String()
}

// readEvents decodes ctrl_tcp's netstrings ("<len>:<json>,").
func (bs *baresipSession) readEvents() {
	r := bufio.NewReader(bs.conn)
	for {
		n, err := r.ReadString(':')
		if err != nil {
			close(bs.events)
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(n, ":")))
		if err != nil || size < 0 || size > 1<<20 {
			close(bs.events)
			return
		}
		buf := make([]byte, size+1)
		if _, err := io.ReadFull(r, buf); err != nil {
			close(bs.events)
			return
		}
		var ev baresipEvent
		if json.Unmarshal(buf[:size], &ev) == nil && ev.Event {
			bs.events <- ev
		}
	}
}

func (bs *baresipSession) command(cmd, params string) error {
	msg, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": "interop"})
	_, err := fmt.Fprintf(bs.conn, "%d:%s,", len(msg), msg)
	return err
}

// nextRegisterEvent waits for REGISTER_OK or REGISTER_FAIL.
func (bs *baresipSession) nextRegisterEvent() stepResult {
	timeout := time.After(stepTimeout())
	for {
		select {
		case ev, ok := <-bs.events:
			if !ok {
				return stepResult{detail: "baresip closed its control connection"}
			}
			switch ev.Type {
			case "REGISTER_OK":
				return stepResult{ok: true, detail: ev.Param}
			case "REGISTER_FAIL":
				return stepResult{detail: "REGISTER_FAIL " + ev.Param}
			}
		case <-bs.exited:
			return stepResult{detail: "baresip exited"}
		case <-timeout:
			return stepResult{detail: fmt.Sprintf("no REGISTER_OK/REGISTER_FAIL event after %s", stepTimeout())}
		}
	}
}

func (bs *baresipSession) register() stepResult {
	if err := bs.command("uanew", bs.account); err != nil {
		return stepResult{detail: fmt.Sprintf("ctrl_tcp uanew: %v", err)}
	}
	return bs.nextRegisterEvent()
}

// refresh waits for the re-REGISTER of baresip's own timer (90% of regint).
func (bs *baresipSession) refresh() stepResult { return bs.nextRegisterEvent() }

// unregister quits baresip, which un-registers before it exits.
func (bs *baresipSession) unregister() stepResult {
	if err := bs.command("quit", ""); err != nil {
		return stepResult{detail: fmt.Sprintf("ctrl_tcp quit: %v", err)}
	}
	select {
	case <-bs.exited:
		if code := bs.cmd.ProcessState.ExitCode(); code != 0 {
			return stepResult{detail: fmt.Sprintf("baresip exit status %d", code)}
		}
		return stepResult{ok: true}
	case <-time.After(stepTimeout()):
		return stepResult{detail: "baresip did not exit after quit"}
	}
}
