// Package interop drives real SIP clients, a real registrar and real attacker tools against the
// built binary: JsSIP and SIP.js (Node.js, test/interop/node), baresip, sipsak, linphonec,
// Kamailio and sipvicious. docs/interop.md has the matrix and how to run it.
//
// A missing tool skips its test with the reason, or fails it when CI=true (scripts/test.sh
// installs every tool). INTEROP_REPORT=FILE writes the result table of the run (markdown) to
// FILE; docs/interop.md shows the last one.
package interop

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if path := os.Getenv("INTEROP_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report()), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "INTEROP_REPORT: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// need returns the path of a tool, or skips the test (fails it under CI) naming the package.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // kamailio, kamctl for non-root PATHs
		if p := filepath.Join(dir, tool); fileExists(p) {
			return p
		}
	}
	unavailable(t, "%s not found (%s); scripts/test.sh installs it", tool, pkg)
	return ""
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// stepTimeout bounds one client step (a REGISTER transaction with its challenge, or a refresh
// a client sends on its own timer). INTEROP_STEP_TIMEOUT (a Go duration) changes it.
func stepTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("INTEROP_STEP_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Second
}

// ---------- the service under test ----------

// Ports of the service; each test runs in its own network namespace (nstest) or on a CI machine.
const (
	portSIP = 15060 // udp and tcp
	portTLS = 15061
	portWS  = 15062
	portWSS = 15063
	realm   = "jambonz.org"
)

// backend is where the service keeps bindings and finds accounts.
type backend string

const (
	standalone backend = "standalone" // YAML config file + embedded store
	redisMySQL backend = "redis+mysql"
)

// server is a running service with every transport and the webhook that authenticates.
type server struct {
	backend backend
	algs    string // DIGEST_ALGORITHMS
	env     map[string]string
	proc    *sidecar.Proc
	hook    *authserver.Server
	cert    testenv.Cert
	rdb     *redis.Client // redis+mysql only
}

// startServer starts the service on every transport with DIGEST_ALGORITHMS=algs; extra is
// added to its environment.
func startServer(t *testing.T, b backend, algs string, extra map[string]string) *server {
	t.Helper()
	s := &server{backend: b, algs: algs, cert: testenv.SelfSignedCert(t, "")}
	listen := fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d,tls:127.0.0.1:%d,ws:127.0.0.1:%d,wss:127.0.0.1:%d",
		portSIP, portSIP, portTLS, portWS, portWSS)
	opts := authserver.DefaultOptions()
	var args []string
	switch b {
	case redisMySQL:
		s.env = sidecar.BaseEnv(t)
		s.hook = sidecar.Webhook(t, opts)
		s.rdb = redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
		t.Cleanup(func() { s.rdb.Close() })
		// Bans and failure counts of an earlier run must not refuse this one.
		ctx := context.Background()
		for _, pattern := range []string{"interop:*", "user:*@" + realm} {
			keys, _ := s.rdb.Keys(ctx, pattern).Result()
			if len(keys) > 0 {
				s.rdb.Del(ctx, keys...)
			}
		}
		s.env["JAMBONES_CLUSTER_ID"] = "interop"
	case standalone:
		addr := os.Getenv("TEST_WEBHOOK_ADDR")
		if addr == "" {
			addr = sidecar.DefaultWebhookAddr
		}
		s.hook = authserver.Start(t, addr, opts)
		config := filepath.Join(t.TempDir(), "interop.yaml")
		yaml := fmt.Sprintf(`webhooks:
  - {webhook_sid: 90dda62e-0ea2-47d1-8164-5bd49003476c, url: "http://%s/auth", username: foo, password: bar}
accounts:
  - account_sid: ed649e33-e771-403a-8c99-1780eabbc803
    name: interop
    sip_realm: %s
    registration_hook_sid: 90dda62e-0ea2-47d1-8164-5bd49003476c
    webhook_secret: foobar
`, addr, realm)
		if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		s.env = map[string]string{
			"SIDECAR_STATE_FILE": filepath.Join(t.TempDir(), "sidecar.state"),
			"SBC_SOCKET_PATH":    filepath.Join(t.TempDir(), "cli.sock"),
			"JAMBONES_LOGLEVEL":  "debug",
		}
		args = []string{"--config", config}
	}
	s.env["SIP_LISTEN"] = listen
	s.env["SIP_TLS_CERT_FILE"] = s.cert.CertFile
	s.env["SIP_TLS_KEY_FILE"] = s.cert.KeyFile
	s.env["DIGEST_ALGORITHMS"] = algs
	for k, v := range extra {
		s.env[k] = v
	}
	s.proc = sidecar.Start(t, s.env, "native front listening", args...)
	return s
}

// addUser creates a user the webhook accepts; the service grants what the client asks.
func (s *server) addUser(name, password string) {
	s.hook.SetUser(realm, name, authserver.User{Password: password})
}

// storedBinding is what the store holds for one AoR.
type storedBinding struct {
	Protocol, Contact string
}

// binding returns the binding of user@realm as the runtime CLI lists it (either store) and,
// with Redis, checks that the user:<aor> key the rest of a cluster reads agrees.
func (s *server) binding(t *testing.T, user string) (storedBinding, bool, error) {
	t.Helper()
	aor := user + "@" + realm
	out, code := sidecar.CLI(t, s.env, "registrations", realm)
	if code != 0 {
		return storedBinding{}, false, fmt.Errorf("cli registrations: exit %d: %s", code, out)
	}
	var b storedBinding
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && f[0] == aor {
			b, found = storedBinding{Protocol: f[1], Contact: f[3]}, true
		}
	}
	if s.rdb != nil {
		val, err := s.rdb.Get(context.Background(), "user:"+aor).Result()
		switch {
		case err == redis.Nil:
			if found {
				return b, found, fmt.Errorf("the CLI lists %s but Redis has no user:%s", aor, aor)
			}
		case err != nil:
			return b, found, fmt.Errorf("redis GET user:%s: %w", aor, err)
		case !found:
			return b, found, fmt.Errorf("redis has user:%s = %s but the CLI does not list it", aor, val)
		case !strings.Contains(val, `"protocol":"`+b.Protocol+`"`):
			return b, found, fmt.Errorf("redis user:%s = %s, CLI protocol %s", aor, val, b.Protocol)
		}
	}
	return b, found, nil
}

// algorithm is the digest algorithm of user's first authenticated REGISTER, as the webhook saw it.
func (s *server) algorithm(user string) string {
	for _, r := range s.hook.Requests() {
		if r.Fields.Username == user {
			if r.Fields.Algorithm == "" {
				return "MD5"
			}
			return r.Fields.Algorithm
		}
	}
	return ""
}

// ---------- results ----------

type result struct {
	section                          string // sectionClients, sectionCarrier, sectionAttacks
	client, transport, backend, algs string
	outcome                          string // "ok (MD5)", "fails at register: ...", ...
}

const (
	sectionClients = "Clients registering to the service"
	sectionCarrier = "regbot registering to a carrier"
	sectionAttacks = "Attacker tools"
)

var (
	resultsMu sync.Mutex
	results   []result
)

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, r)
}

// report is the markdown of the run's results. Clients: one row per client and transport, one
// column per DIGEST_ALGORITHMS value, one text when both backends agree. Carrier and attacks:
// one column per backend.
func report() string {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return ""
	}
	type row struct{ section, client, transport, algs string }
	var rows []row
	cells := map[row]map[string]string{}
	for _, r := range results {
		k := row{r.section, r.client, r.transport, r.algs}
		if cells[k] == nil {
			cells[k] = map[string]string{}
			rows = append(rows, k)
		}
		cells[k][r.backend] = r.outcome
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.client != b.client {
			return a.client < b.client
		}
		return a.transport < b.transport
	})
	cell := func(k row) string {
		st, rm := or(cells[k][string(standalone)]), or(cells[k][string(redisMySQL)])
		if st == rm {
			return st
		}
		return fmt.Sprintf("%s: %s; %s: %s", standalone, st, redisMySQL, rm)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s UTC. A cell holds the result in standalone mode and with Redis+MySQL\n"+
		"when they agree (else both).\n", time.Now().UTC().Format("2006-01-02 15:04"))

	// Clients: pivot on DIGEST_ALGORITHMS.
	type line struct{ client, transport string }
	var lines []line
	byAlgs := map[line]map[string]string{}
	for _, k := range rows {
		if k.section != sectionClients {
			continue
		}
		l := line{k.client, k.transport}
		if byAlgs[l] == nil {
			byAlgs[l] = map[string]string{}
			lines = append(lines, l)
		}
		byAlgs[l][k.algs] = cell(k)
	}
	if len(lines) > 0 {
		fmt.Fprintf(&b, "\n### %s\n\n| client | transport |", sectionClients)
		for _, a := range digestOfferings {
			fmt.Fprintf(&b, " `DIGEST_ALGORITHMS=%s` |", a)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("---|", len(digestOfferings)) + "\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "| %s | %s |", l.client, l.transport)
			for _, a := range digestOfferings {
				fmt.Fprintf(&b, " %s |", or(byAlgs[l][a]))
			}
			b.WriteString("\n")
		}
	}
	for _, section := range []string{sectionCarrier, sectionAttacks} {
		header := false
		for _, k := range rows {
			if k.section != section {
				continue
			}
			if !header {
				fmt.Fprintf(&b, "\n### %s\n\n| who | transport | digest | result |\n|---|---|---|---|\n", section)
				header = true
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", k.client, k.transport, k.algs, cell(k))
		}
	}
	return b.String()
}

func or(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

// waitFor polls cond until it holds or the step timeout passes.
func waitFor(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(stepTimeout())
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return fmt.Errorf("%s: not after %s", what, stepTimeout())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
