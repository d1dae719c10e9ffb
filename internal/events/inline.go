package events

import (
	"errors"
	"time"
)

// Inline is an event carried by the round trip that writes (or removes)
// its binding: the store sends the binding write, then SET KeepKey and
// PUBLISH Channel, pipelined (docs/events.md "Cost"). They are separate
// commands, not part of the binding's script, so a failing publish never
// fails the binding.
type Inline struct {
	// Channel and Publish: the PUBLISH, when Publish is not nil (a refresh
	// with refresh events off is not published, only kept).
	Channel string
	Publish []byte
	// KeepKey, Keep and KeepTTL: the record kept for the binding's expiry
	// event, when KeepKey is not empty.
	KeepKey string
	Keep    []byte
	KeepTTL time.Duration
	// Err is set by the store when the binding was written but the event's
	// commands failed: the event is lost (and counted).
	Err error

	typ Type
}

// InlineKeys is optional on a Backend: the names the store uses to carry an
// event in the binding's own round trip. A Backend without it (the
// in-process bus) gets every event through the queue.
type InlineKeys interface {
	Channel() string
	BindingKey(aor string) string
}

// ErrNotCarried is an Inline's Err when the store could not carry it.
var ErrNotCarried = errors.New("events: the store did not carry the event")

// Inline prepares e to ride on its binding write, or returns nil when it
// goes through the queue (Publish) instead: the backend names no keys.
func (s *Service) Inline(e Event) *Inline {
	keys, ok := s.opts.Backend.(InlineKeys)
	if !ok {
		return nil
	}
	in := &Inline{typ: e.Type}
	raw, rec := encode(&e)
	if rec != nil {
		in.KeepKey, in.Keep = keys.BindingKey(e.AoR), rec
		in.KeepTTL = time.UnixMilli(e.BindingExpiry).Sub(s.opts.Now()) + keepGrace
	}
	if e.Type != Refresh || s.opts.Refresh {
		in.Channel, in.Publish = keys.Channel(), raw
	}
	return in
}

// Sent reports an Inline whose binding was written: it counts the event as
// published, or dropped when its commands failed, and hands it to the
// webhook.
func (s *Service) Sent(in *Inline) {
	if in == nil || in.Publish == nil {
		return
	}
	s.transition(&s.deliverFailing, in.Err, "events: publishing failing, events dropped", "events: publishing working again")
	if in.Err != nil {
		s.opts.Metrics.DroppedN("backend", "error", 1)
		return
	}
	s.opts.Metrics.Emitted(in.typ)
	if s.opts.Webhook != nil {
		s.opts.Webhook.Enqueue(in.Publish)
	}
}
