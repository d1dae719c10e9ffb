// Package options answers inbound OPTIONS (docs/contract.md#sip-answers): plain keepalives get
// 200; check-ins of feature servers (X-FS-Status) and RTP servers
// (X-RTP-Status) update the cluster's membership sets and are answered with
// X-Members, the size of the set.
package options

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Membership is what the handler needs from the membership sets; the set
// names are those of package membership.
type Membership interface {
	Add(ctx context.Context, set membership.Set, member string) (int64, error)
	Remove(ctx context.Context, set membership.Set, member string) (int64, error)
	IsDrained(ctx context.Context, ip string) (bool, error)
}

// Handler answers OPTIONS.
type Handler struct {
	sets    Membership
	trusted func(netip.Addr) bool
	log     *slog.Logger
}

// New returns the OPTIONS handler. Check-ins are accepted only from sources
// trusted reports true for (the cluster's private networks); from anywhere
// else they are answered as plain keepalives and change nothing, so nobody on
// the internet can add themselves as a feature server. nil trusts everyone.
func New(sets Membership, trusted func(netip.Addr) bool, log *slog.Logger) *Handler {
	if trusted == nil {
		trusted = func(netip.Addr) bool { return true }
	}
	return &Handler{sets: sets, trusted: trusted, log: log}
}

// checkIn is what an internal server announces.
type checkIn struct {
	set        membership.Set // ActiveFS or ActiveRTP
	member     string
	open       bool
	serviceURL string
}

// parse returns the check-in carried by r, if any. X-FS-Status wins when
// both headers are present, as in the original.
func parse(r *sipfront.Request) (checkIn, bool) {
	ip := r.Source.Addr().Unmap().String()
	if v := r.Header("X-FS-Status"); r.Msg.GetHeader("X-FS-Status") != nil {
		return checkIn{
			set:        membership.ActiveFS,
			member:     ip + ":" + strconv.Itoa(int(r.Source.Port())),
			open:       isOpen(v),
			serviceURL: strings.TrimSpace(r.Header("X-FS-ServiceUrl")),
		}, true
	}
	if v := r.Header("X-RTP-Status"); r.Msg.GetHeader("X-RTP-Status") != nil {
		return checkIn{set: membership.ActiveRTP, member: ip, open: isOpen(v)}, true
	}
	return checkIn{}, false
}

// isOpen: only `open` adds; anything else (closed, garbage) removes, as in
// the original.
func isOpen(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "open") }

// ServeSIP answers one OPTIONS.
func (h *Handler) ServeSIP(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
	c, ok := parse(r)
	if !ok {
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
		return
	}
	if !h.trusted(r.Source.Addr()) {
		h.log.Info("options: check-in from outside JAMBONES_NETWORK_CIDR ignored", "source", r.Source.String(), "set", c.set)
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
		return
	}
	n, err := h.apply(ctx, r, c)
	if err != nil {
		h.log.Error("options: check-in failed", "err", err, "set", c.set, "member", c.member, "call_id", r.CallID())
		// Retry-After: the feature server checks in again on its own
		// schedule anyway; this tells it the refusal is temporary.
		_ = w.Respond(ctx, &sipfront.Response{Code: 503, Headers: []sipfront.Header{{Name: "Retry-After", Value: "5"}}})
		return
	}
	_ = w.Respond(ctx, &sipfront.Response{Code: 200, Headers: []sipfront.Header{
		{Name: "X-Members", Value: strconv.FormatInt(n, 10)},
	}})
}

// apply updates the sets and returns the size of the server's set.
func (h *Handler) apply(ctx context.Context, r *sipfront.Request, c checkIn) (int64, error) {
	if c.open && c.set == membership.ActiveFS {
		ip := r.Source.Addr().Unmap().String()
		drained, err := h.sets.IsDrained(ctx, ip)
		if err != nil {
			return 0, err
		}
		if drained {
			h.log.Warn("options: drained feature server checked in; treated as closed", "ip", ip, "member", c.member)
			c.open = false
		}
	}
	op := h.sets.Remove
	if c.open {
		op = h.sets.Add
	}
	n, err := op(ctx, c.set, c.member)
	if err != nil {
		return 0, err
	}
	if c.serviceURL != "" {
		if _, err := op(ctx, membership.FSServiceURL, c.serviceURL); err != nil {
			return 0, err
		}
	}
	h.log.Debug("options: check-in", "set", c.set, "member", c.member, "open", c.open, "members", n)
	return n, nil
}
