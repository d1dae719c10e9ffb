package cli

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
)

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
	Members(ctx context.Context, set string) ([]string, error)
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
