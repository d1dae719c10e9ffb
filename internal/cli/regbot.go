package cli

import (
	"context"
	"fmt"
	"io"
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
}
