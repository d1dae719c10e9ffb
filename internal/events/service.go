package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/jsonwire"
)

// Backend carries the events of a cluster: Redis pub/sub and keys, or the
// in-process Bus and the embedded store.
type Backend interface {
	// Deliver publishes the encoded events and keeps the records of the
	// bindings just written, in one round trip.
	Deliver(ctx context.Context, publish [][]byte, keep []Keep) error
	// Subscribe follows the stream until ctx ends (the channel is closed).
	Subscribe(ctx context.Context) (<-chan []byte, error)
	// ClaimExpired atomically removes the members of `active-user` whose
	// expiry is at or before now (at most limit of them) and returns them
	// with their kept records, and how many members remain. Of several
	// instances sweeping at once, each member is returned to one only.
	ClaimExpired(ctx context.Context, now time.Time, limit int) ([]Claimed, int, error)
}

// Keep is the record of a binding kept for its expiry event.
type Keep struct {
	AoR   string
	Value []byte
	TTL   time.Duration
}

// Claimed is an expired binding claimed by a sweep.
type Claimed struct {
	AoR    string
	Expiry int64  // ms since epoch: the member's score
	Value  []byte // the kept record, nil when there is none
}

// Sink is an optional further destination (the webhook); Enqueue must not block.
type Sink interface {
	Enqueue(raw []byte)
}

// Options configure a Service.
type Options struct {
	Backend Backend
	// Refresh publishes refresh events (chatty: off by default).
	Refresh bool
	// Queue bounds the events waiting for the backend (default 10000);
	// beyond it events are dropped and counted.
	Queue int
	// SweepEvery is the period of the expiry sweep (default 1 s).
	SweepEvery time.Duration
	// Webhook, when set, receives every published event.
	Webhook Sink
	Metrics *Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// batchMax bounds the events of one backend round trip.
const batchMax = 256

// sweepLimit bounds the members claimed by one sweep call.
const sweepLimit = 500

// keepGrace is how long a binding's record outlives the binding: the sweep
// must still find it when it claims the lapsed member.
const keepGrace = 5 * time.Minute

// Service is the Publisher of the registrar: a bounded queue in front of
// the backend (and the webhook), and the expiry sweep.
type Service struct {
	opts Options
	// q holds the events waiting for Run, at most opts.Queue; it grows as
	// needed rather than reserving the whole bound at start (10,000 events
	// preallocated were 2.1 MB of heap for a queue that, with Redis, the
	// registrar's events mostly bypass: they ride on the binding's write).
	mu      sync.Mutex
	q       []Event
	pending chan struct{} // signalled (capacity 1) when q becomes non-empty
	// sweepFailing and deliverFailing log an outage once, and its end.
	sweepFailing, deliverFailing atomic.Bool
}

// New returns a service; call Run.
func New(opts Options) *Service {
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{opts: opts, pending: make(chan struct{}, 1)}
}

// Publish implements Publisher: it queues e, or drops (and counts) it when
// the queue is full. A refresh that wrote nothing is dropped at once when
// refresh events are off.
func (s *Service) Publish(e Event) {
	if e.Type == Refresh && !s.opts.Refresh && e.BindingExpiry == 0 {
		return
	}
	s.mu.Lock()
	if len(s.q) >= s.opts.Queue {
		s.mu.Unlock()
		s.opts.Metrics.Dropped("queue", "full")
		return
	}
	s.q = append(s.q, e)
	s.mu.Unlock()
	select {
	case s.pending <- struct{}{}:
	default: // Run has been signalled already
	}
}

// take removes up to batchMax queued events, oldest first.
func (s *Service) take() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.q), batchMax)
	if n == 0 {
		return nil
	}
	batch := slices.Clone(s.q[:n])
	clear(s.q[:n])
	s.q = s.q[n:]
	if len(s.q) == 0 {
		s.q = s.q[:0:0] // a burst's backing array goes with it
	}
	return batch
}

// Wants reports whether events of type t are published (refresh only
// when enabled): the registrar then skips building the others.
func (s *Service) Wants(t Type) bool { return t != Refresh || s.opts.Refresh }

// Subscribe follows the stream (cluster-wide with Redis).
func (s *Service) Subscribe(ctx context.Context) (<-chan []byte, error) {
	return s.opts.Backend.Subscribe(ctx)
}

// Run delivers events and sweeps expiries until ctx ends; then it delivers
// what is still queued (for at most 2 s).
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.opts.SweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := s.Count(ctx)
				if ctx.Err() == nil {
					s.transition(&s.sweepFailing, err, "events: expiry sweep failing", "events: expiry sweep working again")
				}
			}
		}
	})
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			for batch := s.take(); batch != nil && drain.Err() == nil; batch = s.take() {
				s.deliver(drain, batch)
			}
			cancel()
			return
		case <-s.pending:
			for batch := s.take(); batch != nil; batch = s.take() {
				s.deliver(ctx, batch)
				if ctx.Err() != nil {
					break
				}
			}
		}
	}
}

// deliver sends batch (queued events, at most batchMax) in one backend
// round trip.
func (s *Service) deliver(ctx context.Context, batch []Event) {
	now := s.opts.Now()
	var publish [][]byte
	var keep []Keep
	for i := range batch {
		e := &batch[i]
		raw, rec := encode(e)
		if rec != nil {
			keep = append(keep, Keep{AoR: e.AoR, Value: rec, TTL: time.UnixMilli(e.BindingExpiry).Sub(now) + keepGrace})
		}
		if e.Type == Refresh && !s.opts.Refresh {
			continue
		}
		publish = append(publish, raw)
		s.opts.Metrics.Emitted(e.Type)
		if s.opts.Webhook != nil {
			s.opts.Webhook.Enqueue(raw)
		}
	}
	err := s.opts.Backend.Deliver(ctx, publish, keep)
	if err != nil {
		s.opts.Metrics.DroppedN("backend", "error", len(publish))
	}
	s.transition(&s.deliverFailing, err, "events: publishing failing, events dropped", "events: publishing working again")
}

// transition logs when an operation starts failing and when it works
// again, not at every attempt (a Redis outage would flood the log).
func (s *Service) transition(failing *atomic.Bool, err error, down, up string) {
	if err != nil {
		if !failing.Swap(true) {
			s.opts.Log.Warn(down, "err", err)
		}
		return
	}
	if failing.Swap(false) {
		s.opts.Log.Info(up)
	}
}

// record is what is kept of a binding for its expiry event: the event that
// wrote it and the expiry it wrote (a later binding's record must not be
// reported for an earlier binding's expiry).
type record struct {
	Expiry int64           `json:"expiry"`
	Event  json.RawMessage `json:"event"`
}

// encode returns e's JSON and, for an event that wrote a binding
// (BindingExpiry set), the record kept for its expiry: both as json.Marshal
// writes them (e, and record{e.BindingExpiry, e's JSON}), in one buffer, the
// event's slice capped so that appending to it never writes over the record.
// TestEncode_SameAsMarshal holds them to Marshal's bytes.
func encode(e *Event) (raw, rec []byte) {
	if e.BindingExpiry <= 0 {
		return e.AppendJSON(make([]byte, 0, 384)), nil
	}
	rec = make([]byte, 0, 512)
	rec = append(rec, `{"expiry":`...)
	rec = jsonwire.AppendInt(rec, e.BindingExpiry)
	rec = append(rec, `,"event":`...)
	start := len(rec)
	rec = e.AppendJSON(rec)
	raw = rec[start:len(rec):len(rec)]
	return raw, append(rec, '}')
}

// Count sweeps: it claims the expired members of `active-user`, publishes
// an expire event for each, and returns how many members remain. It stands
// in for the store's prune-and-count, which would remove expired members
// without reporting them.
func (s *Service) Count(ctx context.Context) (int, error) {
	for {
		now := s.opts.Now()
		claimed, remaining, err := s.opts.Backend.ClaimExpired(ctx, now, sweepLimit)
		if err != nil {
			return 0, err
		}
		for _, c := range claimed {
			s.Publish(expireEvent(c, now))
		}
		if len(claimed) < sweepLimit {
			return remaining, nil
		}
	}
}

// expireEvent reports a claimed member: the kept record's details when it
// belongs to this very binding, else the AoR alone.
func expireEvent(c Claimed, now time.Time) Event {
	e := Event{AoR: c.AoR, Realm: RealmOf(c.AoR)}
	var rec record
	if c.Value != nil && json.Unmarshal(c.Value, &rec) == nil && rec.Expiry == c.Expiry {
		var kept Event
		if json.Unmarshal(rec.Event, &kept) == nil && strings.EqualFold(kept.AoR, c.AoR) {
			e = kept
		}
	}
	e.Type, e.Time, e.Reason = Expire, Millis(now), ""
	return e
}
