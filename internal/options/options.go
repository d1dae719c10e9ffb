// Package options answers inbound OPTIONS requests (keepalives).
package options

import (
	"context"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Handler answers OPTIONS.
type Handler struct{}

// ServeSIP answers a keepalive with 200.
func (Handler) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
	_ = w.Respond(ctx, &sipfront.Response{Code: 200})
}
