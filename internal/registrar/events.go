package registrar

import (
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// wanter is a publisher that tells which types it publishes.
type wanter interface {
	Wants(t events.Type) bool
}

// inliner is a publisher whose events can ride on the binding write
// (events.Service with a Redis backend).
type inliner interface {
	Inline(e events.Event) *events.Inline
	Sent(in *events.Inline)
}

// inlineEvent prepares the event of the binding write bind is about to make
// when the store and the publisher can carry it in the same round trip, or
// returns nil (the event then goes through publish).
func inlineEvent(d Deps, r *Registration, granted int, expiry int64) (EventStore, *events.Inline) {
	if d.Events == nil || r.AoR == "" {
		return nil, nil
	}
	es, ok := d.Store.(EventStore)
	if !ok {
		return nil, nil
	}
	in, ok := d.Events.(inliner)
	if !ok {
		return nil, nil
	}
	e := events.Event{Type: events.Unregister}
	if !r.Unregister {
		e.Type = events.Register
		if p := r.prev; p != nil && p.Contact == r.Contact && p.Proxy == proxyOf(r.Req.Source) {
			e.Type = events.Refresh
		}
		e.Expires, e.BindingExpiry = granted, expiry
	}
	fill(&e, d.Now(), r)
	return es, in.Inline(e)
}

// failed marks the registration as an auth-failed or rejected event with
// its reason; the event itself is published once the answer is sent.
func (r *Registration) failed(t events.Type, reason string) {
	r.event, r.eventReason = t, reason
}

// publish reports the outcome of a REGISTER to Deps.Events
// (docs/events.md): a refusal marked by a stage, or a 200 classified here.
// Refusals before the AoR is known (guard, malformed requests) and
// challenges are not events.
func (g *Registrar) publish(r *Registration, res *sipfront.Response) {
	if g.deps.Events == nil || r.AoR == "" {
		return
	}
	if r.inline != nil { // carried by the binding's round trip
		if in, ok := g.deps.Events.(inliner); ok {
			in.Sent(r.inline)
		}
		return
	}
	t := r.event
	e := events.Event{Reason: r.eventReason}
	if t == "" {
		if res.Code != 200 {
			return
		}
		switch {
		case r.Unregister:
			t = events.Unregister
		case r.Cached:
			// The hot path (UDP phones re-register every 30 s): not even
			// built when refresh events are off.
			if w, ok := g.deps.Events.(wanter); ok && !w.Wants(events.Refresh) {
				return
			}
			t = events.Refresh
			if r.prev != nil {
				e.Expires = int(time.UnixMilli(r.prev.ExpiryTime).Sub(g.deps.Now()) / time.Second)
			}
		default:
			t = events.Register
			if p := r.prev; p != nil && p.Contact == r.Contact && p.Proxy == proxyOf(r.Req.Source) {
				t = events.Refresh
			}
			e.Expires, e.BindingExpiry = r.granted, r.bindingExpiry
		}
	} else {
		e.Expires = r.Expires
	}
	e.Type = t
	fill(&e, g.deps.Now(), r)
	g.deps.Events.Publish(e)
}

// fill sets the fields every REGISTER event has.
func fill(e *events.Event, now time.Time, r *Registration) {
	e.Time = events.Millis(now)
	e.AoR, e.Realm, e.Contact = r.AoR, r.Realm, r.Contact
	if r.Account != nil {
		e.AccountSID = r.Account.SID
	}
	e.Source = r.Req.Source.String()
	e.Transport = r.Req.Transport
	e.SBCAddress = r.Req.SBCAddress
	e.UserAgent = clip(r.Req.Header("User-Agent"))
	e.CallID = r.Req.CallID()
}
