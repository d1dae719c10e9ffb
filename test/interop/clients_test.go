package interop

import (
	"fmt"
	"strings"
	"testing"
)

// stepResult is how a client step ended.
type stepResult struct {
	ok     bool
	detail string // status code, cause, what the client logged
}

// session is one client instance registering one user.
type session interface {
	// register sends the first REGISTER (answering the challenge) and waits for its end.
	register() stepResult
	// refresh waits for (or triggers) the client's re-REGISTER of the same binding.
	refresh() stepResult
	// unregister sends the REGISTER with expires 0 and waits for its end.
	unregister() stepResult
	// logs is what the client printed, for failure messages.
	logs() string
}

// clientCase is one client over one transport.
type clientCase struct {
	client, transport string
	// start launches the client for user/password against s; the client stops when t ends.
	start func(t *testing.T, s *server, user, password string) session
}

// expectFailure lists the cases known to fail, by DIGEST_ALGORITHMS then "client/transport",
// with why (docs/interop.md). A case listed that starts to work, or one not listed that fails,
// fails the test: the table in the docs must then be updated.
var expectFailure = map[string]map[string]string{
	"MD5":         {},
	"SHA-256,MD5": {
		// libre (baresip's SIP stack) aborts on any non-MD5 challenge, even with an MD5 one beside it.
		"baresip/udp": "libre: Register: Function not implemented on a SHA-256 challenge",
		"baresip/tcp": "libre: Register: Function not implemented on a SHA-256 challenge",
		"baresip/tls": "libre: Register: Function not implemented on a SHA-256 challenge",
	},
}

func allClients() []clientCase {
	return []clientCase{
		{client: "jssip", transport: "ws", start: nodeClient("jssip", "ws")},
		{client: "jssip", transport: "wss", start: nodeClient("jssip", "wss")},
		{client: "sipjs", transport: "ws", start: nodeClient("sipjs", "ws")},
		{client: "baresip", transport: "udp", start: baresipClient("udp")},
		{client: "baresip", transport: "tcp", start: baresipClient("tcp")},
		{client: "baresip", transport: "tls", start: baresipClient("tls")},
	}
}

// TestClients registers, refreshes and un-registers every client over every transport it
// supports, against the service in standalone mode and with Redis+MySQL, offering MD5 (the
// default) and then SHA-256,MD5.
func TestClients(t *testing.T) {
	for _, b := range []backend{standalone, redisMySQL} {
		for _, algs := range []string{"MD5", "SHA-256,MD5"} {
			t.Run(fmt.Sprintf("%s_%s", b, algs), func(t *testing.T) {
				s := startServer(t, b, algs, nil)
				for _, c := range allClients() {
					t.Run(c.client+"_"+c.transport, func(t *testing.T) { runClient(t, s, c) })
				}
			})
		}
	}
}

func runClient(t *testing.T, s *server, c clientCase) {
	name := fmt.Sprintf("%s over %s (%s, DIGEST_ALGORITHMS=%s)", c.client, c.transport, s.backend, s.algs)
	user := strings.ReplaceAll(fmt.Sprintf("%s-%s", c.client, c.transport), "_", "-")
	password := "pw-" + user
	s.addUser(user, password)
	sess := c.start(t, s, user, password)
	failedStep, err := lifecycle(t, s, sess, user, c.transport)
	outcome := fmt.Sprintf("ok (%s)", s.algorithm(user))
	if err != nil {
		outcome = fmt.Sprintf("fails at %s", failedStep)
	}
	record(result{client: c.client, transport: c.transport, backend: string(s.backend), algs: s.algs, outcome: outcome})

	why, expected := expectFailure[s.algs][c.client+"/"+c.transport]
	switch {
	case err != nil && !expected:
		t.Errorf("%s: step %s: %v\nclient output:\n%s", name, failedStep, err, tail(sess.logs(), 60))
	case err != nil:
		t.Logf("%s: fails as known (%s): step %s: %v", name, why, failedStep, err)
	case expected:
		t.Errorf("%s: registers, refreshes and un-registers although listed as failing (%s): update expectFailure and docs/interop.md", name, why)
	default:
		t.Logf("%s: %s", name, outcome)
	}
}

// lifecycle runs register, store check, refresh, store check, un-register, store check.
func lifecycle(t *testing.T, s *server, sess session, user, transport string) (string, error) {
	if r := sess.register(); !r.ok {
		return "register", fmt.Errorf("not registered: %s", r.detail)
	}
	if err := expectBound(t, s, user, transport); err != nil {
		return "binding after register", err
	}
	if r := sess.refresh(); !r.ok {
		return "refresh", fmt.Errorf("refresh not accepted: %s", r.detail)
	}
	if err := expectBound(t, s, user, transport); err != nil {
		return "binding after refresh", err
	}
	if r := sess.unregister(); !r.ok {
		return "unregister", fmt.Errorf("un-register not accepted: %s", r.detail)
	}
	if err := waitFor("binding removed", func() (bool, error) {
		_, found, err := s.binding(t, user)
		return err == nil && !found, err
	}); err != nil {
		return "binding after unregister", err
	}
	return "", nil
}

func expectBound(t *testing.T, s *server, user, transport string) error {
	b, found, err := s.binding(t, user)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("no binding for %s@%s in the store", user, realm)
	case b.Protocol != transport:
		return fmt.Errorf("binding protocol %q, want %q (contact %s)", b.Protocol, transport, b.Contact)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
