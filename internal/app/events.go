package app

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/localbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/redisbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/webhook"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
)

// registrationEvents is the event stream of docs/events.md; nil when
// REGISTRATION_EVENTS=off (its methods are safe on nil).
type registrationEvents struct {
	svc  *events.Service
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// openEvents starts the event service (and its webhook) on the store's
// backend: Redis pub/sub, or the in-process bus with the embedded store.
// They run until close, not until ctx ends: the REGISTERs answered while
// the front drains still publish, and the last events are delivered before
// the store closes.
func openEvents(ctx context.Context, cfg *config.Config, backend events.Backend, m *metrics.Metrics, log *slog.Logger) *registrationEvents {
	ec := cfg.Events
	if !ec.Enabled {
		log.Info("registration events: off (REGISTRATION_EVENTS=off)")
		return nil
	}
	e := &registrationEvents{}
	ctx, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	em := events.NewMetrics(m.Registry())
	if lb, ok := backend.(*localbus.Backend); ok {
		lb.Bus.Dropped = func() { em.Dropped("subscriber", "slow") }
	}
	opts := events.Options{Backend: backend, Refresh: ec.Refresh, Queue: ec.Queue, SweepEvery: ec.ExpirySweep, Metrics: em, Log: log}
	if ec.WebhookURL != "" {
		hook, err := webhook.New(webhook.Options{URL: ec.WebhookURL, Secret: ec.WebhookSecret, UserAgent: cfg.HTTPUserAgent,
			Queue: ec.WebhookQueue, Batch: ec.WebhookBatch, Flush: ec.WebhookFlush, Timeout: cfg.WebhookTimeout,
			RetryMin: ec.WebhookRetryMin, RetryMax: ec.WebhookRetryMax, Metrics: em, Log: log})
		if err != nil { // the configuration checked the URL already
			log.Error("registration events: webhook not usable", "err", err)
		} else {
			opts.Webhook = hook
			e.wg.Go(func() { hook.Run(ctx) })
		}
	}
	e.svc = events.New(opts)
	e.wg.Go(func() { e.svc.Run(ctx) })
	log.Info("registration events: on", "channel", redisbus.Channel(cfg.ClusterID), "redis", !isLocal(backend),
		"refresh", ec.Refresh, "webhook", ec.WebhookURL != "")
	return e
}

// close delivers what is queued (for at most 2 s) and stops.
func (e *registrationEvents) close() {
	if e == nil {
		return
	}
	e.stop()
	e.wg.Wait()
}

// publisher is the registrar's Deps.Events (nil when off).
func (e *registrationEvents) publisher() events.Publisher {
	if e == nil {
		return nil
	}
	return e.svc
}

// counter prunes and counts active-user: the event sweep when on (it
// reports what it prunes), the store otherwise.
func (e *registrationEvents) counter(regs store.Registrations) activeCounter {
	if e == nil {
		return regs
	}
	return e.svc
}

// stream is what `cli events` follows (nil when off).
func (e *registrationEvents) stream() cliStream {
	if e == nil {
		return nil
	}
	return e.svc
}

type activeCounter interface {
	Count(ctx context.Context) (int, error)
}

type cliStream interface {
	Subscribe(ctx context.Context) (<-chan []byte, error)
}

func isLocal(b events.Backend) bool {
	_, ok := b.(*localbus.Backend)
	return ok
}
