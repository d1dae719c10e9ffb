package regbot

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Registering from every SBC (docs/outbound.md#registering-from-every-sbc):
// agents of all-SBC carriers run on every instance, each with its own
// Contact, and report into a per-carrier hash, field = this SBC's address;
// voip_carriers.register_status gets the aggregate.

// SBCStatusKey is the hash of a carrier's per-SBC registration status.
func SBCStatusKey(clusterID, carrierSID string) string {
	return clusterID + ":regbot-sbc-status:" + carrierSID
}

// sbcEntry is one SBC's field: its register_status and when it was last
// written (unix ms); an entry older than staleAfter is an SBC that went away.
type sbcEntry struct {
	statusJSON
	Updated int64 `json:"updated"`
}

// staleAfter is three missed heartbeats (at least 3 s).
func (r *Regbot) staleAfter() time.Duration {
	return max(3*r.opts.StatusInterval, 3*time.Second)
}

// sbcID is this SBC's field in the hash: the address its Contact carries,
// else the instance's token.
func (a *agent) sbcID() string {
	if p := a.r.deps.PublicAddress(a.transport); p != "" {
		return p
	}
	return a.r.leader.Token()
}

// report records the status of an attempt: register_status for the
// leader's agents, this SBC's field and the aggregate for all-SBC ones.
func (a *agent) report(ctx context.Context, st statusJSON) {
	if !a.local {
		a.r.writeStatus(ctx, a.target.CarrierSID, st)
		return
	}
	a.mu.Lock()
	a.sbcStatus = &st
	a.mu.Unlock()
	a.r.publishSBC(ctx, a.target.CarrierSID, a.sbcID(), st, true)
}

// publishSBC writes this SBC's entry (refreshing the hash's TTL) and then
// the aggregate when write is set or a stale SBC was pruned.
func (r *Regbot) publishSBC(ctx context.Context, carrierSID, sbc string, st statusJSON, write bool) {
	b, _ := json.Marshal(sbcEntry{statusJSON: st, Updated: time.Now().UnixMilli()})
	key := SBCStatusKey(r.opts.ClusterID, carrierSID)
	if err := r.deps.Store.HSetTTL(ctx, key, map[string]string{sbc: string(b)}, r.staleAfter()); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("regbot: writing per-SBC status failed", "carrier_sid", carrierSID, "err", err)
		}
		return
	}
	r.aggregate(ctx, carrierSID, write)
}

// aggregate reads the carrier's per-SBC entries, deletes stale ones and
// writes register_status: the JSON of the original with status ok when any
// SBC is registered (that SBC's entry, the latest one otherwise) plus
// "sbcs", every live SBC's entry by address.
func (r *Regbot) aggregate(ctx context.Context, carrierSID string, write bool) {
	key := SBCStatusKey(r.opts.ClusterID, carrierSID)
	all, err := r.deps.Store.HGetAll(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("regbot: reading per-SBC status failed", "carrier_sid", carrierSID, "err", err)
		}
		return
	}
	cutoff := time.Now().Add(-r.staleAfter()).UnixMilli()
	live := map[string]statusJSON{}
	var stale []string
	for sbc, v := range all {
		var e sbcEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.Updated < cutoff {
			stale = append(stale, sbc)
			continue
		}
		live[sbc] = e.statusJSON
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		r.log.Info("regbot: SBCs no longer reporting a carrier", "carrier_sid", carrierSID, "sbcs", stale)
		if err := r.deps.Store.HDel(ctx, key, stale...); err != nil && ctx.Err() == nil {
			r.log.Warn("regbot: pruning per-SBC status failed", "carrier_sid", carrierSID, "err", err)
		}
		write = true
	}
	if len(live) == 0 {
		return
	}
	// Instances write the aggregate concurrently, so an older view can land
	// last: a heartbeat writes again whenever this instance's view changed
	// since its last write, and the views converge.
	sig := liveSignature(live)
	r.mu.Lock()
	if !write && r.aggSig[carrierSID] == sig {
		r.mu.Unlock()
		return
	}
	r.aggSig[carrierSID] = sig
	r.mu.Unlock()
	r.writeStatus(ctx, carrierSID, aggregateStatus(live))
}

// liveSignature names the live SBCs and their states.
func liveSignature(live map[string]statusJSON) string {
	parts := make([]string, 0, len(live))
	for sbc, st := range live {
		parts = append(parts, sbc+"="+st.Status)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// aggregateStatus picks the entry shown at the top: a registered SBC's
// (latest first), else the latest; ties broken by address.
func aggregateStatus(live map[string]statusJSON) statusJSON {
	sbcs := make([]string, 0, len(live))
	for s := range live {
		sbcs = append(sbcs, s)
	}
	slices.Sort(sbcs)
	best := ""
	for _, s := range sbcs {
		if best == "" {
			best = s
			continue
		}
		b, c := live[best], live[s]
		if bOK, cOK := b.Status == "ok", c.Status == "ok"; bOK != cOK {
			if cOK {
				best = s
			}
			continue
		}
		if c.Timestamp > b.Timestamp {
			best = s
		}
	}
	agg := live[best]
	agg.SBCs = live
	return agg
}

// heartbeat re-writes this SBC's entries so they do not go stale, and
// prunes SBCs that stopped reporting.
func (r *Regbot) heartbeat(ctx context.Context) {
	r.mu.Lock()
	local := make([]*agent, 0, len(r.local))
	for _, a := range r.local {
		local = append(local, a)
	}
	r.mu.Unlock()
	for _, a := range local {
		a.mu.Lock()
		st := a.sbcStatus
		a.mu.Unlock()
		if st != nil {
			r.publishSBC(ctx, a.target.CarrierSID, a.sbcID(), *st, false)
		}
	}
}

// withdraw removes this SBC's entry of a stopped all-SBC agent and writes
// the aggregate of the others.
func (a *agent) withdraw(ctx context.Context) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	key := SBCStatusKey(a.r.opts.ClusterID, a.target.CarrierSID)
	if err := a.r.deps.Store.HDel(ctx, key, a.sbcID()); err != nil {
		a.r.log.Warn("regbot: removing per-SBC status failed", "carrier_sid", a.target.CarrierSID, "err", err)
		return
	}
	a.r.aggregate(ctx, a.target.CarrierSID, true)
}

// stopLocal un-registers and stops this instance's all-SBC agents (on
// shutdown) and withdraws their entries.
func (r *Regbot) stopLocal(ctx context.Context) {
	for _, a := range r.stopSet(ctx, r.local, true) {
		a.withdraw(ctx)
	}
}
