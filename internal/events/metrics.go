package events

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the event stream does; its methods are safe on nil.
type Metrics struct {
	emitted *prometheus.CounterVec
	dropped *prometheus.CounterVec
	webhook *prometheus.CounterVec
}

// NewMetrics registers the event metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sbc_sip_sidecar", Name: "registration_events_total",
			Help: "Registration events published by this instance, by type.",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sbc_sip_sidecar", Name: "registration_events_dropped_total",
			Help: "Registration events lost, by where (queue: publishing queue full; backend: Redis or bus failed; webhook) and reason.",
		}, []string{"sink", "reason"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sbc_sip_sidecar", Name: "registration_events_webhook_requests_total",
			Help: "Batches POSTed to REGISTRATION_EVENTS_WEBHOOK_URL, by result (ok, retry, refused).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.emitted, m.dropped, m.webhook)
	return m
}

// Emitted counts one published event.
func (m *Metrics) Emitted(t Type) {
	if m != nil {
		m.emitted.WithLabelValues(string(t)).Inc()
	}
}

// Dropped counts one lost event.
func (m *Metrics) Dropped(sink, reason string) { m.DroppedN(sink, reason, 1) }

// DroppedN counts n lost events.
func (m *Metrics) DroppedN(sink, reason string, n int) {
	if m != nil && n > 0 {
		m.dropped.WithLabelValues(sink, reason).Add(float64(n))
	}
}

// WebhookRequest counts one webhook batch attempt.
func (m *Metrics) WebhookRequest(result string) {
	if m != nil {
		m.webhook.WithLabelValues(result).Inc()
	}
}
