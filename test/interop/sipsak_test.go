package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// sipsakSession runs one sipsak usrloc-mode REGISTER per step (sipsak has no refresh timer:
// a refresh is the same REGISTER again, from the same port with the same Contact).
type sipsakSession struct {
	t              *testing.T
	bin, hosts     string
	user, password string
	mu             sync.Mutex
	out            bytes.Buffer
}

const sipsakPort = 14451

// withHosts runs argv with a private /etc/hosts (a mount namespace of its own) in which
// jambonz.org is 127.0.0.1: sipsak resolves the domain of its target URI even when an outbound
// proxy is given, and the URI's domain must be the realm (the Request-URI and To of the
// REGISTER come from it).
func withHosts(t *testing.T, hostsFile string, argv ...string) *exec.Cmd {
	unshare := need(t, "unshare", "util-linux")
	flags := "-m"
	if os.Getuid() != 0 {
		flags = "-rm" // a user namespace lets an ordinary user mount in its own namespace
	}
	// sh -c SCRIPT HOSTS ARGV...: $0 is the hosts file, "$@" the command.
	args := append([]string{flags, "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hostsFile}, argv...)
	return exec.Command(unshare, args...)
}

func hostsFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(p, []byte("127.0.0.1 localhost "+realm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sipsakClient() func(t *testing.T, s *server, user, password string) session {
	return func(t *testing.T, s *server, user, password string) session {
		return &sipsakSession{t: t, bin: need(t, "sipsak", "sipsak"), hosts: hostsFile(t), user: user, password: password}
	}
}

func (ss *sipsakSession) run(expires int) stepResult {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout())
	defer cancel()
	// -U usrloc mode (register only), -i no Via warning, -S send from the receiving port,
	// -H our address (not the host name), -u auth user (without it sipsak sends "user@").
	cmd := withHosts(ss.t, ss.hosts, ss.bin, "-U", "-i", "-S", "-vv",
		"-s", fmt.Sprintf("sip:%s@%s", ss.user, realm),
		"-p", fmt.Sprintf("127.0.0.1:%d", portSIP), "-H", "127.0.0.1", "-l", strconv.Itoa(sipsakPort),
		"-u", ss.user, "-a", ss.password, "-x", strconv.Itoa(expires),
		"-C", fmt.Sprintf("sip:%s@127.0.0.1:%d", ss.user, sipsakPort))
	out, err := cmdOutput(ctx, cmd)
	ss.mu.Lock()
	fmt.Fprintf(&ss.out, "$ %s\n%s\n", cmd.String(), out)
	ss.mu.Unlock()
	if err != nil {
		return stepResult{detail: fmt.Sprintf("sipsak: %v: %s", err, tail(out, 3))}
	}
	return stepResult{ok: true}
}

func cmdOutput(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return b.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return b.String(), ctx.Err()
	}
}

func (ss *sipsakSession) register() stepResult   { return ss.run(60) }
func (ss *sipsakSession) refresh() stepResult    { return ss.run(60) }
func (ss *sipsakSession) unregister() stepResult { return ss.run(0) }
func (ss *sipsakSession) logs() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.out.String()
}
