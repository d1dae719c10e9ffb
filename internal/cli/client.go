package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultSocketPath is SBC_SOCKET_PATH's default.
const DefaultSocketPath = "/tmp/sbc-sip-sidecar.sock"

// ClientTimeout bounds one command round trip.
const ClientTimeout = 5 * time.Second

// Call sends cmd to the server at path and returns its answer. Errors say
// what went wrong in operator terms (socket missing, timeout, refused).
func Call(ctx context.Context, path string, cmd Command) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(ctx, path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("sending command: %w", err)
	}
	r := bufio.NewReader(io.LimitReader(c, 1<<20))
	answer, err := r.ReadBytes('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("no answer from %s within %s", path, ClientTimeout)
		}
		return nil, fmt.Errorf("reading answer: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(answer, &out); err != nil {
		return nil, fmt.Errorf("invalid answer from the service: %w", err)
	}
	if ok, _ := out["success"].(bool); !ok {
		msg, _ := out["error"].(string)
		if msg == "" {
			msg = "command failed"
		}
		return out, errors.New(msg)
	}
	return out, nil
}

// dialError says in operator terms why the socket could not be reached.
func dialError(ctx context.Context, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("socket %s does not exist: is sbc-sip-sidecar running (SBC_SOCKET_PATH)?", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing is listening on %s: is sbc-sip-sidecar running?", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on %s: run as the user of sbc-sip-sidecar", path)
	case ctx.Err() != nil:
		return fmt.Errorf("timed out connecting to %s after %s", path, ClientTimeout)
	}
	return fmt.Errorf("connecting to %s: %w", path, err)
}

const usage = `usage: sbc-sip-sidecar cli <command>

  fs drain <ip>       stop routing to the feature server at <ip> (cluster-wide)
  fs undrain <ip>     route to it again once it checks in
  fs drained          list drained feature server IPs
  fs active           list feature servers in active-fs
  fs list             active and drained feature servers
  set <key> <json>    set a runtime setting (value is JSON, else a string)
  get <key>           show a runtime setting
  add <key> <item>    add an item to a list setting
  remove <key> <item> remove an item from a list setting
  list                show all runtime settings
  registrations [realm]  list registered devices (all realms, or one)
  regbot status       outbound registration: leader or standby, agents, registered
  events [--type T[,T]] [--realm R]
                      follow registration events as NDJSON until Ctrl-C (docs/events.md)

The socket is SBC_SOCKET_PATH (default ` + DefaultSocketPath + `).
`

// Main runs the cli subcommand with args (after "cli") and returns the exit
// status: 0 ok, 1 the command failed, 2 usage error.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	path := getenv("SBC_SOCKET_PATH")
	if path == "" {
		path = DefaultSocketPath
	}
	if len(args) > 0 && args[0] == "events" {
		return followEvents(ctx, path, args[1:], stdout, stderr)
	}
	cmd, show, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n\n%s", err, usage)
		return 2
	}
	if cmd.Action == "" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	res, err := Call(ctx, path, cmd)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	show(stdout, res)
	return 0
}

type printer func(w io.Writer, res map[string]any)

func parseArgs(args []string) (Command, printer, error) {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return Command{}, nil, nil
	}
	need := func(n int, what string) error {
		if len(args) != n {
			return fmt.Errorf("%s", what)
		}
		return nil
	}
	switch args[0] {
	case "fs":
		if len(args) < 2 {
			return Command{}, nil, errors.New("fs needs one of: drain, undrain, drained, active, list")
		}
		switch args[1] {
		case "drain", "undrain":
			if len(args) != 3 {
				return Command{}, nil, fmt.Errorf("fs %s needs the feature server's IP address", args[1])
			}
			ip, err := ParseIP(args[2])
			if err != nil {
				return Command{}, nil, err
			}
			return Command{Action: "fs-" + args[1], Server: ip.String()}, printDrain, nil
		case "drained":
			return Command{Action: "fs-drained"}, printDrained, nil
		case "active", "available":
			return Command{Action: "fs-available"}, printActive, nil
		case "list":
			return Command{Action: "fs-list"}, printList, nil
		}
		return Command{}, nil, fmt.Errorf("unknown fs command %q (drain, undrain, drained, active, list)", args[1])
	case "set":
		if err := need(3, "set needs a key and a value"); err != nil {
			return Command{}, nil, err
		}
		v := json.RawMessage(args[2])
		if !json.Valid(v) {
			v, _ = json.Marshal(args[2])
		}
		return Command{Action: "set", Key: args[1], Value: v}, printKeyValue, nil
	case "get":
		if err := need(2, "get needs a key"); err != nil {
			return Command{}, nil, err
		}
		return Command{Action: "get", Key: args[1]}, printKeyValue, nil
	case "add", "remove":
		if err := need(3, args[0]+" needs a key and an item"); err != nil {
			return Command{}, nil, err
		}
		return Command{Action: args[0], Key: args[1], Item: args[2]}, printArray, nil
	case "list":
		return Command{Action: "list"}, printConfig, nil
	case "regbot":
		if len(args) != 2 || args[1] != "status" {
			return Command{}, nil, errors.New("regbot needs: status")
		}
		return Command{Action: "regbot-status"}, printRegbot, nil
	case "registrations":
		if len(args) > 2 {
			return Command{}, nil, errors.New("registrations takes at most a realm")
		}
		realm := ""
		if len(args) == 2 {
			realm = args[1]
		}
		return Command{Action: "registrations", Key: realm}, printRegistrations, nil
	}
	return Command{}, nil, fmt.Errorf("unknown command %q", args[0])
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func printDrain(w io.Writer, res map[string]any) {
	verb := "Drained"
	if res["action"] == "undrain" {
		verb = "Undrained"
	}
	fmt.Fprintf(w, "%s %v\n", verb, res["server"])
	if removed := strs(res["removed"]); len(removed) > 0 {
		fmt.Fprintf(w, "Removed from active-fs: %s\n", strings.Join(removed, ", "))
	}
	fmt.Fprintf(w, "Drained: [%s]\n", strings.Join(strs(res["drained"]), ", "))
}

func printDrained(w io.Writer, res map[string]any) {
	list := strs(res["drained"])
	if len(list) == 0 {
		fmt.Fprintln(w, "No feature servers drained")
		return
	}
	fmt.Fprintln(w, "Drained feature servers:")
	for _, s := range list {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

func printActive(w io.Writer, res map[string]any) {
	list := strs(res["available"])
	if len(list) == 0 {
		fmt.Fprintln(w, "No active feature servers")
		return
	}
	fmt.Fprintf(w, "Active feature servers (%d):\n", len(list))
	for _, s := range list {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

func printList(w io.Writer, res map[string]any) {
	servers, _ := res["servers"].([]any)
	if len(servers) == 0 {
		fmt.Fprintln(w, "No feature servers")
		return
	}
	fmt.Fprintln(w, "Feature servers:")
	for _, s := range servers {
		m, _ := s.(map[string]any)
		fmt.Fprintf(w, "  %-45v %v\n", m["server"], m["status"])
	}
}

func printKeyValue(w io.Writer, res map[string]any) {
	v, _ := json.Marshal(res["value"])
	fmt.Fprintf(w, "%v = %s\n", res["key"], v)
}

func printArray(w io.Writer, res map[string]any) {
	fmt.Fprintf(w, "%v = [%s]\n", res["key"], strings.Join(strs(res["array"]), ", "))
}

func printConfig(w io.Writer, res map[string]any) {
	cfg, _ := res["config"].(map[string]any)
	if len(cfg) == 0 {
		fmt.Fprintln(w, "No runtime settings")
		return
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := json.Marshal(cfg[k])
		fmt.Fprintf(w, "%s = %s\n", k, v)
	}
}

// followEvents runs `cli events`: NDJSON on stdout until Ctrl-C.
func followEvents(ctx context.Context, path string, args []string, stdout, stderr io.Writer) int {
	cmd, err := parseEventsArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n\n%s", err, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Follow(ctx, path, cmd, stdout); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}
