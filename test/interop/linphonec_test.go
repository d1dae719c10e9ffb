package interop

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// linphonecSession drives linphonec (liblinphone's console client) through its stdin
// commands (register, unregister, quit) and reads the account state changes it logs.
type linphonecSession struct {
	cmd          *exec.Cmd
	stdin        io.WriteCloser
	mu           sync.Mutex
	out          bytes.Buffer
	exited       chan struct{}
	registerLine string
}

// Local ports of linphonec, one set per transport so that a closing instance never holds the next one's.
var linphonecPort = map[string]int{"udp": 14460, "tcp": 14463, "tls": 14466}

const (
	lpRegistered = "to [LinphoneRegistrationOk]"
	lpFailed     = "to [LinphoneRegistrationFailed]"
	lpCleared    = "to [LinphoneRegistrationCleared]"
	lpRefreshed  = "Register refresher [200]"
)

func linphonecClient(transport string) func(t *testing.T, s *server, user, password string) session {
	return func(t *testing.T, s *server, user, password string) session {
		bin := need(t, "linphonec", "linphone-cli")
		home := t.TempDir()
		// liblinphone keeps its database under $HOME/.local/share/linphone.
		if err := os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o700); err != nil {
			t.Fatal(err)
		}
		base := linphonecPort[transport]
		// reg_expires: short, so that its refresher re-registers soon (at 90%).
		rc := fmt.Sprintf(`[sip]
sip_port=%d
sip_tcp_port=%d
sip_tls_port=%d
root_ca=%s
verify_server_certs=1
verify_server_cn=1
[proxy_default_values]
reg_expires=%d
`, base, base+1, base+2, s.cert.CertFile, regint())
		rcFile := filepath.Join(home, "linphonerc")
		if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
			t.Fatal(err)
		}
		// The proxy by name for TLS: liblinphone (mbedtls) matches the certificate's DNS names,
		// not its IP addresses.
		host, port := "127.0.0.1", portSIP
		if transport == "tls" {
			host, port = "localhost", portTLS
		}
		ls := &linphonecSession{exited: make(chan struct{}),
			registerLine: fmt.Sprintf("register sip:%s@%s sip:%s:%d;transport=%s %s\n", user, realm, host, port, transport, password)}
		ls.cmd = exec.Command(bin, "-c", rcFile, "-d", "1")
		ls.cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		ls.cmd.Stdout = writerFunc(ls.write)
		ls.cmd.Stderr = ls.cmd.Stdout
		var err error
		if ls.stdin, err = ls.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := ls.cmd.Start(); err != nil {
			t.Fatalf("linphonec: %v", err)
		}
		go func() { _ = ls.cmd.Wait(); close(ls.exited) }()
		t.Cleanup(func() {
			_, _ = io.WriteString(ls.stdin, "quit\n")
			select {
			case <-ls.exited:
			case <-time.After(5 * time.Second):
				_ = ls.cmd.Process.Kill()
				<-ls.exited
			}
		})
		return ls
	}
}

func (ls *linphonecSession) write(p []byte) (int, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.out.Write(p)
}

func (ls *linphonecSession) logs() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.out.String()
}

// await sends line (if any) and waits until the output after that point contains ok (a
// success) or one of fail.
func (ls *linphonecSession) await(line, ok string, fail ...string) stepResult {
	from := len(ls.logs())
	if line != "" {
		if _, err := io.WriteString(ls.stdin, line); err != nil {
			return stepResult{detail: fmt.Sprintf("linphonec stdin: %v", err)}
		}
	}
	var res stepResult
	err := waitFor("linphonec "+strings.TrimSpace(strings.SplitN(line+ok, " ", 2)[0]), func() (bool, error) {
		out := ls.logs()[from:]
		if strings.Contains(out, ok) {
			res = stepResult{ok: true}
			return true, nil
		}
		for _, f := range fail {
			if strings.Contains(out, f) {
				res = stepResult{detail: "linphonec logged " + f}
				return true, nil
			}
		}
		select {
		case <-ls.exited:
			res = stepResult{detail: "linphonec exited"}
			return true, nil
		default:
		}
		return false, nil
	})
	if err != nil {
		return stepResult{detail: fmt.Sprintf("%v (waiting for %q)", err, ok)}
	}
	return res
}

func (ls *linphonecSession) register() stepResult {
	return ls.await(ls.registerLine, lpRegistered, lpFailed)
}

// refresh waits for the refresher's next 200 (reg_expires is short).
func (ls *linphonecSession) refresh() stepResult {
	return ls.await("", lpRefreshed, lpFailed, "Register refresher [4", "Register refresher [5")
}

func (ls *linphonecSession) unregister() stepResult {
	return ls.await("unregister\n", lpCleared, lpFailed)
}
