package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// browserUA is the User-Agent given to sipvicious tools in their "not a scanner" runs.
const browserUA = "Linphone/5.1.65 (belle-sip/5.1.64)"

// sipvicious runs tool (svwar, svcrack) with args. A non-empty ua disguises it, as an attacker
// would by patching the library's request builder: that User-Agent instead of
// friendly-scanner, and an Expires header (sipvicious sends none, and a REGISTER without an
// expiry is answered 400 before any challenge, like the original). The run is bounded by
// limit: svcrack keeps sending while it gets answers.
func sipvicious(t *testing.T, tool, ua string, limit time.Duration, args ...string) string {
	t.Helper()
	bin := need(t, tool, "sipvicious")
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	// The Debian package keeps the Python package beside the scripts' target or in /usr/share.
	var pkgDir string
	for _, d := range []string{filepath.Dir(real), "/usr/share/sipvicious"} {
		if fileExists(filepath.Join(d, "sipvicious", tool+".py")) {
			pkgDir = d
			break
		}
	}
	if pkgDir == "" {
		unavailable(t, "sipvicious' Python package not found beside %s or in /usr/share/sipvicious", real)
	}
	python := need(t, "python3", "python3")
	if fileExists("/usr/bin/python3") {
		python = "/usr/bin/python3" // Debian's, which the package is built for
	}
	script := `import sys
sys.path.insert(0, sys.argv.pop(1))
tool, ua = sys.argv.pop(1), sys.argv.pop(1)
mod = __import__("sipvicious." + tool, fromlist=["main"])
if ua:
    build = mod.makeRequest
    def disguised(*args, **kwargs):
        kwargs["useragent"] = ua
        first, rest = build(*args, **kwargs).split("\r\n", 1)
        return first + "\r\nExpires: 60\r\n" + rest
    mod.makeRequest = disguised
sys.argv[0] = tool
sys.exit(mod.main())
`
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.Command(python, append([]string{"-c", script, pkgDir, tool, ua}, args...)...)
	cmd.Dir = t.TempDir() // svwar/svcrack keep session files in the working directory
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + cmd.Dir}
	out, err := cmdOutput(ctx, cmd)
	t.Logf("%s (User-Agent %q) %s:\n%s", tool, uaOr(ua), strings.Join(args, " "), tail(out, 25))
	if err != nil && ctx.Err() == nil {
		// A non-zero exit is how these tools report "nothing found"; only a crash matters.
		if strings.Contains(out, "Traceback") {
			t.Fatalf("%s crashed: %v\n%s", tool, err, out)
		}
	}
	return out
}

func uaOr(ua string) string {
	if ua == "" {
		return "friendly-scanner"
	}
	return ua
}

// foundExtensions parses svwar's result table ("| Extension | Authentication |").
func foundExtensions(out string) map[string]string {
	found := map[string]string{}
	re := regexp.MustCompile(`(?m)^\|\s*(\S+)\s*\|\s*(\S[^|]*?)\s*\|$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if m[1] != "Extension" {
			found[m[1]] = m[2]
		}
	}
	return found
}

// TestAttack_SvwarCannotTellUsersApart: svwar (with its scanner User-Agent, and with an
// ordinary one) scans a known realm with a dictionary of existing and unknown users; whatever
// it reports, it reports the same for both kinds, so it cannot enumerate the users.
func TestAttack_SvwarCannotTellUsersApart(t *testing.T) {
	for _, b := range []backend{standalone, redisMySQL} {
		t.Run(string(b), func(t *testing.T) {
			s := startServer(t, b, "MD5", nil)
			known := []string{"john", "jane", "alice", "bob"}
			unknown := []string{"nobody", "ghost", "1000", "admin"}
			for _, u := range known[2:] {
				s.addUser(u, "pw-"+u)
			}
			dict := filepath.Join(t.TempDir(), "users.txt")
			if err := os.WriteFile(dict, []byte(strings.Join(append(append([]string{}, known...), unknown...), "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for i, ua := range []string{"", browserUA} {
				out := sipvicious(t, "svwar", ua, 60*time.Second, "-d", dict, "--domain", realm,
					"-p", strconv.Itoa(portSIP), "-P", strconv.Itoa(14480+i), "--force", "--maximumtime", "3", "127.0.0.1")
				found := foundExtensions(out)
				k, u := 0, 0
				for _, x := range known {
					if _, ok := found[x]; ok {
						k++
					}
				}
				for _, x := range unknown {
					if _, ok := found[x]; ok {
						u++
					}
				}
				// Either every name is reported (all answered alike) or none is.
				verdict := "cannot tell them apart"
				if !(k == len(known) && u == len(unknown)) && !(k == 0 && u == 0) {
					verdict = "**tells them apart**"
					t.Errorf("svwar (User-Agent %q) tells users apart: reported %v (known %v, unknown %v)", uaOr(ua), found, known, unknown)
				}
				t.Logf("svwar (User-Agent %q): %d of %d known and %d of %d unknown users reported", uaOr(ua), k, len(known), u, len(unknown))
				record(result{section: sectionAttacks, client: fmt.Sprintf("svwar, User-Agent %s", uaOr(ua)), transport: "udp", backend: string(b), algs: "MD5",
					outcome: fmt.Sprintf("%d/%d known and %d/%d unknown users reported: %s", k, len(known), u, len(unknown), verdict)})
			}
		})
	}
}

// TestAttack_SvcrackEndsBanned: svcrack guesses john's password from a dictionary holding it
// after more wrong guesses than AUTH_FAILURE_LIMIT. With its scanner User-Agent it is refused
// from the first request (it then repeats its REGISTER for as long as it gets answers, so the
// run is cut after a few seconds); disguised (see sipvicious) its guesses are counted and the
// source is banned before it reaches the right password.
func TestAttack_SvcrackEndsBanned(t *testing.T) {
	for _, b := range []backend{standalone, redisMySQL} {
		t.Run(string(b), func(t *testing.T) {
			for i, ua := range []string{"", browserUA} {
				name, limit := "scanner-user-agent", 5*time.Second // refused from the first request: it only loops
				if ua != "" {
					name, limit = "disguised", 30*time.Second
				}
				t.Run(name, func(t *testing.T) {
					// AUTH_FAILURE_LIMIT 5 keeps the dictionary short.
					s := startServer(t, b, "MD5", map[string]string{"AUTH_FAILURE_LIMIT": "5"})
					var words []string
					for n := 0; n < 15; n++ {
						words = append(words, fmt.Sprintf("wrong%02d", n))
					}
					words = append(words, "1234") // john's password (authserver.DefaultJambonzUsers)
					dict := filepath.Join(t.TempDir(), "passwords.txt")
					if err := os.WriteFile(dict, []byte(strings.Join(words, "\n")+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					out := sipvicious(t, "svcrack", ua, limit, "-u", "john", "-d", dict, "--domain", realm,
						"-p", strconv.Itoa(portSIP), "-P", strconv.Itoa(14490+i), "--maximumtime", "3", "127.0.0.1")
					if strings.Contains(out, "The password for") || strings.Contains(out, "| 1234") {
						t.Fatalf("svcrack (User-Agent %q) found the password:\n%s", uaOr(ua), out)
					}
					verdict := "banned"
					if ua == "" {
						verdict = "scanner"
					}
					// The service's log arrives through a pipe: wait for the lines.
					logged := func(text string) bool {
						return waitFor(text, func() (bool, error) { return strings.Contains(s.proc.Logs(), text), nil }) == nil
					}
					if !logged(`"verdict":"` + verdict + `"`) {
						t.Errorf("svcrack (User-Agent %q): the service never refused it as %s", uaOr(ua), verdict)
					}
					if ua != "" {
						if !logged(`"msg":"guard: banned"`) {
							t.Errorf("svcrack (User-Agent %q): no ban logged", uaOr(ua))
						}
						if s.rdb != nil {
							if n, _ := s.rdb.Exists(context.Background(), "interop:ban:ip:127.0.0.1").Result(); n != 1 {
								keys, _ := s.rdb.Keys(context.Background(), "interop:*").Result()
								t.Errorf("svcrack (User-Agent %q): no interop:ban:ip:127.0.0.1 in Redis (keys %v)", uaOr(ua), keys)
							}
						}
					}
					outcome := "password not found: refused as a scanner (403) from the first request"
					if ua != "" {
						outcome = "password not found: source banned after AUTH_FAILURE_LIMIT (5) failures"
					}
					if t.Failed() {
						outcome = "**FAILED** (see the test log)"
					}
					record(result{section: sectionAttacks, client: fmt.Sprintf("svcrack, User-Agent %s", uaOr(ua)), transport: "udp", backend: string(b), algs: "MD5", outcome: outcome})
				})
			}
		})
	}
}
