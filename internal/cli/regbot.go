package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

// RegisterRegbot adds the "regbot-status" command; status returns the
// regbot's view (leader or not, agents, registered).
func RegisterRegbot(srv *Server, status func() any) {
	if srv == nil {
		return
	}
	srv.Register("regbot-status", func(context.Context, Command) (Result, error) {
		return Result{"regbot": status()}, nil
	})
}

func printRegbot(w io.Writer, res map[string]any) {
	st, _ := res["regbot"].(map[string]any)
	role := "standby (another instance holds the regbot token)"
	if st["active"] == true {
		role = "leader"
	}
	fmt.Fprintf(w, "Role:       %s\nAgents:     %v\nRegistered: %v\n", role, st["total"], st["registered"])
	agents, _ := st["agents"].([]any)
	if len(agents) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCARRIER\tAOR\tGATEWAY\tSTATE\tLAST ANSWER\tDECISION\tNEXT ATTEMPT\tEXPIRES\tFAILURES")
	for _, x := range agents {
		m, _ := x.(map[string]any)
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", m["carrier_sid"], m["aor"], m["gateway"], m["state"],
			dash(m["last_answer"]), dash(m["decision"]), dash(m["next_attempt"]), m["expires"], m["failures"])
	}
	_ = tw.Flush()
}

func dash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}
