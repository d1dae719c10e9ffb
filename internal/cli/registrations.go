package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Registrations lists current bindings (Redis or embedded store).
type Registrations interface {
	List(ctx context.Context, realm string) (map[string]registrar.Binding, error)
}

// RegisterRegistrations adds the "registrations" command (Key: optional realm).
func RegisterRegistrations(srv *Server, regs Registrations, now func() time.Time) {
	srv.Register("registrations", func(ctx context.Context, cmd Command) (Result, error) {
		list, err := regs.List(ctx, cmd.Key)
		if err != nil {
			return nil, fmt.Errorf("listing registrations: %w", err)
		}
		aors := make([]string, 0, len(list))
		for aor := range list {
			aors = append(aors, aor)
		}
		sort.Strings(aors)
		out := make([]map[string]any, 0, len(aors))
		for _, aor := range aors {
			b := list[aor]
			out = append(out, map[string]any{
				"aor":        aor,
				"contact":    b.Contact,
				"protocol":   b.Protocol,
				"proxy":      b.Proxy,
				"expires_in": int(time.UnixMilli(b.ExpiryTime).Sub(now()).Seconds()),
			})
		}
		return Result{"realm": cmd.Key, "registrations": out}, nil
	})
}

func printRegistrations(w io.Writer, res map[string]any) {
	regs, _ := res["registrations"].([]any)
	if len(regs) == 0 {
		fmt.Fprintln(w, "No registrations")
		return
	}
	fmt.Fprintf(w, "%-40s %-8s %-8s %s\n", "AOR", "PROTO", "EXPIRES", "CONTACT")
	for _, r := range regs {
		m, _ := r.(map[string]any)
		fmt.Fprintf(w, "%-40v %-8v %-8v %v\n", m["aor"], m["protocol"], fmt.Sprintf("%vs", m["expires_in"]), m["contact"])
	}
}
