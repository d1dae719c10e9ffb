package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
)

// Settings is the generic runtime key/value store of the original
// (`set`/`get`/`add`/`remove`/`list`): per process, lost on restart, for
// operators' toggles that features may read.
type Settings struct {
	mu     sync.Mutex
	values map[string]any
}

// NewSettings returns an empty store.
func NewSettings() *Settings { return &Settings{values: map[string]any{}} }

// Get returns the value of key.
func (s *Settings) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	return v, ok
}

// RegisterSettings adds set, get, add, remove and list to srv.
func RegisterSettings(srv *Server, s *Settings) {
	needKey := func(cmd Command) error {
		if cmd.Key == "" {
			return errors.New("key is required")
		}
		return nil
	}
	srv.Register("set", func(_ context.Context, cmd Command) (Result, error) {
		if err := needKey(cmd); err != nil {
			return nil, err
		}
		var v any
		if len(cmd.Value) > 0 {
			if err := json.Unmarshal(cmd.Value, &v); err != nil {
				return nil, fmt.Errorf("value: %w", err)
			}
		}
		s.mu.Lock()
		s.values[cmd.Key] = v
		s.mu.Unlock()
		return Result{"key": cmd.Key, "value": v}, nil
	})
	srv.Register("get", func(_ context.Context, cmd Command) (Result, error) {
		if err := needKey(cmd); err != nil {
			return nil, err
		}
		v, _ := s.Get(cmd.Key)
		return Result{"key": cmd.Key, "value": v}, nil
	})
	srv.Register("add", func(_ context.Context, cmd Command) (Result, error) {
		if err := needKey(cmd); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		arr := s.array(cmd.Key)
		added := !contains(arr, cmd.Item)
		if added {
			arr = append(arr, cmd.Item)
			s.values[cmd.Key] = arr
		}
		return Result{"key": cmd.Key, "item": cmd.Item, "array": arr, "added": added}, nil
	})
	srv.Register("remove", func(_ context.Context, cmd Command) (Result, error) {
		if err := needKey(cmd); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		arr := s.array(cmd.Key)
		out := make([]string, 0, len(arr))
		for _, v := range arr {
			if v != cmd.Item {
				out = append(out, v)
			}
		}
		removed := len(out) != len(arr)
		if removed {
			s.values[cmd.Key] = out
		}
		return Result{"key": cmd.Key, "item": cmd.Item, "array": out, "removed": removed}, nil
	})
	srv.Register("list", func(context.Context, Command) (Result, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		cfg := make(map[string]any, len(s.values))
		for k, v := range s.values {
			cfg[k] = v
		}
		return Result{"config": cfg}, nil
	})
}

// array returns key's value as a list of strings (a comma-separated string
// counts too, as in the original); s.mu is held.
func (s *Settings) array(key string) []string {
	switch v := s.values[key].(type) {
	case []string:
		return append([]string(nil), v...)
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case string:
		var out []string
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		return out
	}
	return []string{}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// FeatureServers is what the fs-* commands need from the membership sets.
type FeatureServers interface {
	Drain(ctx context.Context, ip netip.Addr) ([]string, error)
	Undrain(ctx context.Context, ip netip.Addr) (bool, error)
	Members(ctx context.Context, set membership.Set) ([]string, error)
}

// ParseIP validates a feature server address given by an operator.
func ParseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	return ip.Unmap(), nil
}

// RegisterFeatureServers adds fs-drain, fs-undrain, fs-drained, fs-list and
// fs-available to srv.
func RegisterFeatureServers(srv *Server, fs FeatureServers) {
	drained := func(ctx context.Context) ([]string, error) {
		return fs.Members(ctx, membership.DrainedFS)
	}
	srv.Register("fs-drain", func(ctx context.Context, cmd Command) (Result, error) {
		ip, err := ParseIP(cmd.Server)
		if err != nil {
			return nil, err
		}
		removed, err := fs.Drain(ctx, ip)
		if err != nil {
			return nil, err
		}
		list, err := drained(ctx)
		if err != nil {
			return nil, err
		}
		return Result{"action": "drain", "server": ip.String(), "drained": list, "removed": removed}, nil
	})
	srv.Register("fs-undrain", func(ctx context.Context, cmd Command) (Result, error) {
		ip, err := ParseIP(cmd.Server)
		if err != nil {
			return nil, err
		}
		was, err := fs.Undrain(ctx, ip)
		if err != nil {
			return nil, err
		}
		list, err := drained(ctx)
		if err != nil {
			return nil, err
		}
		return Result{"action": "undrain", "server": ip.String(), "drained": list, "was_drained": was}, nil
	})
	srv.Register("fs-drained", func(ctx context.Context, _ Command) (Result, error) {
		list, err := drained(ctx)
		if err != nil {
			return nil, err
		}
		return Result{"drained": list}, nil
	})
	srv.Register("fs-available", func(ctx context.Context, _ Command) (Result, error) {
		list, err := fs.Members(ctx, membership.ActiveFS)
		if err != nil {
			return nil, err
		}
		return Result{"available": list}, nil
	})
	srv.Register("fs-list", func(ctx context.Context, _ Command) (Result, error) {
		active, err := fs.Members(ctx, membership.ActiveFS)
		if err != nil {
			return nil, err
		}
		list, err := drained(ctx)
		if err != nil {
			return nil, err
		}
		return Result{"servers": listServers(active, list), "drained": list}, nil
	})
}

// ServerStatus is one line of fs-list.
type ServerStatus struct {
	Server string `json:"server"`
	Status string `json:"status"` // active or drained
}

// listServers merges the active members (ip:port) and the drained IPs.
func listServers(active, drained []string) []ServerStatus {
	out := []ServerStatus{}
	seen := map[string]bool{}
	for _, m := range active {
		st := "active"
		if contains(drained, hostOf(m)) {
			st = "drained"
		}
		out = append(out, ServerStatus{Server: m, Status: st})
		seen[hostOf(m)] = true
	}
	for _, ip := range drained {
		if !seen[ip] {
			out = append(out, ServerStatus{Server: ip, Status: "drained"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Server < out[j].Server })
	return out
}

// hostOf strips the :port of a member written as ip:port (IPv6 unbracketed).
func hostOf(member string) string {
	i := strings.LastIndexByte(member, ':')
	if i < 0 {
		return member
	}
	if _, err := strconv.Atoi(member[i+1:]); err != nil {
		return member
	}
	return member[:i]
}
