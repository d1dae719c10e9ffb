// Package metrics exposes the service's operational metrics: a Prometheus
// registry served on /metrics, and the StatsD metrics of the original
// (@jambonz/stats-collector names) when ENABLE_METRICS=1.
//
// The features report through small methods (ObserveRegister,
// ObserveWebhook, SetActiveBindings, SetRegbotAgents, SetMembers,
// BackendError); every method is safe on a nil *Metrics so that packages may
// take an optional one.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
)

const namespace = "sbc_sip_sidecar"

// Backends named by BackendError.
const (
	Redis   = "redis"
	MySQL   = "mysql"
	Webhook = "webhook"
)

// Metrics records what the service does.
type Metrics struct {
	reg *prometheus.Registry

	registrations  *prometheus.CounterVec
	regDuration    *prometheus.HistogramVec
	webhookCalls   *prometheus.CounterVec
	webhookLatency prometheus.Histogram
	activeBindings prometheus.Gauge
	regbotAgents   *prometheus.GaugeVec
	members        *prometheus.GaugeVec
	backendErrors  *prometheus.CounterVec

	statsd *StatsD // nil when StatsD is off
}

// New builds the metrics; statsd may be nil.
func New(version string, statsd *StatsD) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), statsd: statsd}
	// Latency buckets from 1 ms (cached answers) to 10 s (slow webhooks).
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "registrations_total",
		Help: "REGISTER requests answered, by result (registered, unregistered, cached, challenged, rejected, error, dropped), SIP status and transport.",
	}, []string{"result", "status", "transport"})
	m.regDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "registration_duration_seconds",
		Help:    "Time to answer a REGISTER; cached=true for re-registers answered from the stored binding.",
		Buckets: buckets,
	}, []string{"cached"})
	m.webhookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_requests_total",
		Help: "Registration webhook calls by HTTP status (0: no answer).",
	}, []string{"status"})
	m.webhookLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "webhook_duration_seconds",
		Help: "Registration webhook round-trip time.", Buckets: buckets,
	})
	m.activeBindings = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "active_bindings",
		Help: "Registered users in the cluster (members of active-user).",
	})
	m.regbotAgents = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "regbot_agents",
		Help: "Outbound registration agents by state.",
	}, []string{"state"})
	m.members = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "members",
		Help: "Feature servers and RTP servers in service (OPTIONS check-ins).",
	}, []string{"kind"})
	m.backendErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "backend_errors_total",
		Help: "Failed calls to Redis, MySQL and the registration webhook.",
	}, []string{"backend"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Version of the running binary (value 1).",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)

	m.reg.MustRegister(m.registrations, m.regDuration, m.webhookCalls, m.webhookLatency,
		m.activeBindings, m.regbotAgents, m.members, m.backendErrors, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Show the error counters at zero before the first failure, so alert
	// rules on rate() see the series from the start.
	for _, b := range []string{Redis, MySQL, Webhook} {
		m.backendErrors.WithLabelValues(b)
	}
	return m
}

// Handler serves the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the Prometheus registry (tests, extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register describes one answered REGISTER.
type Register struct {
	Status     int // SIP status answered; 0 when dropped
	Transport  string
	Cached     bool
	Unregister bool
	Elapsed    time.Duration
}

// ObserveRegister records one answered REGISTER.
func (m *Metrics) ObserveRegister(r Register) {
	if m == nil {
		return
	}
	status := strconv.Itoa(r.Status)
	m.registrations.WithLabelValues(result(r), status, r.Transport).Inc()
	m.regDuration.WithLabelValues(strconv.FormatBool(r.Cached)).Observe(r.Elapsed.Seconds())
	name := "sbc.registration.total.response_time"
	if r.Cached {
		name = "sbc.registration.cached.response_time"
	}
	m.statsd.Histogram(name, millis(r.Elapsed), Tag{"status", status})
}

func result(r Register) string {
	switch {
	case r.Status == 0:
		return "dropped"
	case r.Status == 200 && r.Cached:
		return "cached"
	case r.Status == 200 && r.Unregister:
		return "unregistered"
	case r.Status >= 200 && r.Status < 300:
		return "registered"
	case r.Status == 401 || r.Status == 407:
		return "challenged"
	case r.Status >= 500:
		return "error"
	}
	return "rejected"
}

// ObserveWebhook records one registration webhook call; status is the HTTP
// status, 0 when the hook could not be reached.
func (m *Metrics) ObserveWebhook(d time.Duration, status int) {
	if m == nil {
		return
	}
	s := strconv.Itoa(status)
	m.webhookCalls.WithLabelValues(s).Inc()
	m.webhookLatency.Observe(d.Seconds())
	if status != 200 {
		m.backendErrors.WithLabelValues(Webhook).Inc()
	}
	tags := []Tag{{"hook_type", "auth"}, {"status", s}}
	m.statsd.Histogram("app.hook.response_time", millis(d), tags...)
	if status != 200 && status != 403 {
		m.statsd.Count("app.hook.error.count", 1, tags...)
	}
}

// SetActiveBindings sets the number of registered users.
func (m *Metrics) SetActiveBindings(n int) {
	if m == nil {
		return
	}
	m.activeBindings.Set(float64(n))
	m.statsd.Gauge("sbc.users.count", int64(n))
}

// SetRegbotAgents sets how many outbound registration agents are in state
// (e.g. registered, failed, disabled).
func (m *Metrics) SetRegbotAgents(state string, n int) {
	if m == nil {
		return
	}
	m.regbotAgents.WithLabelValues(state).Set(float64(n))
}

// SetMembers sets the number of feature servers or RTP servers in service;
// the kind is the gauge's name in StatsD and its label in Prometheus.
func (m *Metrics) SetMembers(kind membership.Kind, n int) {
	if m == nil {
		return
	}
	m.members.WithLabelValues(string(kind)).Set(float64(n))
	m.statsd.Gauge(string(kind), int64(n))
}

// BackendError counts one failed call to backend (Redis, MySQL, Webhook).
func (m *Metrics) BackendError(backend string) {
	if m == nil {
		return
	}
	m.backendErrors.WithLabelValues(backend).Inc()
}

func millis(d time.Duration) int64 { return d.Milliseconds() }
