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

// knownFailure is a case expected to fail: why (for the docs), and evidence, a text the
// client's output, the failed step or the service's log must contain (so that another failure is not taken for it).
type knownFailure struct{ why, evidence string }

// expectFailure lists the cases known to fail, by DIGEST_ALGORITHMS then "client/transport"
// (docs/interop.md). A case listed that starts to work, or one not listed that fails, fails
// the test: the table in the docs must then be updated.
var expectFailure = map[string]map[string]knownFailure{
	"MD5": {
		"sipsak/udp": sipsakIsAScanner,
	},
	"SHA-256,MD5": {
		"baresip/udp": libreAborts,
		"baresip/tcp": libreAborts,
		"baresip/tls": libreAborts,
		"sipsak/udp":  sipsakIsAScanner,
	},
	"MD5,SHA-256": {
		"jssip/ws":    jsTakesLast,
		"jssip/wss":   jsTakesLast,
		"sipjs/ws":    jsTakesLast,
		"baresip/udp": libreAborts,
		"baresip/tcp": libreAborts,
		"baresip/tls": libreAborts,
		"sipsak/udp":  sipsakIsAScanner,
	},
}

var (
	// libre (baresip's SIP stack) aborts on a non-MD5 challenge, even with an MD5 one beside it.
	libreAborts = knownFailure{"libre aborts on the SHA-256 challenge (Register: Function not implemented)",
		"Function not implemented"}
	// JsSIP and SIP.js keep the last WWW-Authenticate of a 401 and know only MD5.
	jsTakesLast = knownFailure{"takes the last challenge (SHA-256) and aborts: MD5 only",
		`challenge with Digest algorithm different than`}
	// sipsak's User-Agent is in the default SCANNER_USER_AGENTS (it is a probing tool).
	// TestClients_SipsakNotAScanner runs it with a list without it.
	sipsakIsAScanner = knownFailure{"User-Agent sipsak is in the default SCANNER_USER_AGENTS: 403",
		`"verdict":"scanner","user_agent":"sipsak`}
	// sipsak answers only the first challenge, and knows only MD5.
	sipsakNoSHA256 = knownFailure{"sipsak takes the first challenge (SHA-256) and knows only MD5",
		"unsupported authentication algorithm"}
)

func allClients() []clientCase {
	return []clientCase{
		{client: "jssip", transport: "ws", start: nodeClient("jssip", "ws")},
		{client: "jssip", transport: "wss", start: nodeClient("jssip", "wss")},
		{client: "sipjs", transport: "ws", start: nodeClient("sipjs", "ws")},
		{client: "baresip", transport: "udp", start: baresipClient("udp")},
		{client: "baresip", transport: "tcp", start: baresipClient("tcp")},
		{client: "baresip", transport: "tls", start: baresipClient("tls")},
		{client: "sipsak", transport: "udp", start: sipsakClient()},
		{client: "linphonec", transport: "udp", start: linphonecClient("udp")},
		{client: "linphonec", transport: "tcp", start: linphonecClient("tcp")},
		{client: "linphonec", transport: "tls", start: linphonecClient("tls")},
	}
}

// TestClients registers, refreshes and un-registers every client over every transport it
// supports, against the service in standalone mode and with Redis+MySQL, offering MD5 (the
// default) and then SHA-256,MD5.
func TestClients(t *testing.T) {
	matrix(t, allClients(), nil, expectFailure)
}

// TestClients_SipsakNotAScanner runs sipsak with SCANNER_USER_AGENTS set to a list without it.
func TestClients_SipsakNotAScanner(t *testing.T) {
	c := clientCase{client: "sipsak", transport: "udp", start: sipsakClient()}
	matrix(t, []clientCase{c}, map[string]string{"SCANNER_USER_AGENTS": "friendly-scanner,sipvicious"},
		map[string]map[string]knownFailure{"SHA-256,MD5": {"sipsak/udp": sipsakNoSHA256}})
}

// digestOfferings are the DIGEST_ALGORITHMS values tried: the default, and SHA-256 offered
// before and after MD5 (clients differ in which of several challenges they take).
var digestOfferings = []string{"MD5", "SHA-256,MD5", "MD5,SHA-256"}

// matrix runs the clients against each backend and DIGEST_ALGORITHMS value; extra is added to
// the service's environment, failing lists the expected failures (see expectFailure).
func matrix(t *testing.T, clients []clientCase, extra map[string]string, failing map[string]map[string]knownFailure) {
	for _, b := range []backend{standalone, redisMySQL} {
		for _, algs := range digestOfferings {
			t.Run(fmt.Sprintf("%s_%s", b, algs), func(t *testing.T) {
				s := startServer(t, b, algs, extra)
				for _, c := range clients {
					t.Run(c.client+"_"+c.transport, func(t *testing.T) { runClient(t, s, c, failing[algs], extra) })
				}
			})
		}
	}
}

func runClient(t *testing.T, s *server, c clientCase, failing map[string]knownFailure, extra map[string]string) {
	name := fmt.Sprintf("%s over %s (%s, DIGEST_ALGORITHMS=%s)", c.client, c.transport, s.backend, s.algs)
	user := strings.ReplaceAll(fmt.Sprintf("%s-%s", c.client, c.transport), "_", "-")
	password := "pw-" + user
	s.addUser(user, password)
	sess := c.start(t, s, user, password)
	failedStep, err := lifecycle(t, s, sess, user, c.transport)
	known, expected := failing[c.client+"/"+c.transport]
	outcome := fmt.Sprintf("ok (%s)", s.algorithm(user))
	switch {
	case err != nil && expected:
		outcome = fmt.Sprintf("fails at %s: %s", failedStep, known.why)
	case err != nil:
		outcome = fmt.Sprintf("**FAILS at %s** (unexpected)", failedStep)
	}
	client := c.client
	for k, v := range extra {
		client += fmt.Sprintf(" (%s=%s)", k, v)
	}
	record(result{section: sectionClients, client: client, transport: c.transport, backend: string(s.backend), algs: s.algs, outcome: outcome})

	// A client's log reaches us through its own pipe, possibly after its step result: wait
	// for the evidence rather than look once.
	evidenceErr := error(nil)
	if err != nil && expected {
		evidenceErr = waitFor("evidence "+known.evidence, func() (bool, error) {
			return strings.Contains(err.Error()+sess.logs()+s.proc.Logs(), known.evidence), nil
		})
	}
	switch {
	case err != nil && !expected:
		t.Errorf("%s: step %s: %v\nclient output:\n%s", name, failedStep, err, tail(sess.logs(), 60))
	case evidenceErr != nil:
		t.Errorf("%s: step %s: %v; expected to fail (%s) but the output lacks %q\nclient output:\n%s",
			name, failedStep, err, known.why, known.evidence, tail(sess.logs(), 60))
	case err != nil:
		t.Logf("%s: fails as known (%s): step %s: %v", name, known.why, failedStep, err)
	case expected:
		t.Errorf("%s: registers, refreshes and un-registers although listed as failing (%s): update expectFailure and docs/interop.md", name, known.why)
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

// expectBound waits until the store holds user's binding over transport (the service writes
// it before answering; the wait only spares the check any assumption about that).
func expectBound(t *testing.T, s *server, user, transport string) error {
	var last error
	err := waitFor("binding in the store", func() (bool, error) {
		b, found, err := s.binding(t, user)
		switch {
		case err != nil:
			last = err
		case !found:
			last = fmt.Errorf("no binding for %s@%s in the store", user, realm)
		case b.Protocol != transport:
			last = fmt.Errorf("binding protocol %q, want %q (contact %s)", b.Protocol, transport, b.Contact)
		default:
			return true, nil
		}
		return false, last
	})
	return err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
