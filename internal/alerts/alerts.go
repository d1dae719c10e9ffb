// Package alerts carries operator alerts (docs/contract.md#alerts) to where they
// are kept: InfluxDB in a cluster, the log otherwise.
package alerts

import (
	"context"
	"log/slog"
)

// Alert types written by this service.
const (
	WebhookFailure           = "webhook-failure"
	WebhookConnectionFailure = "webhook-connection-failure"
	AccountDeviceLimit       = "account-device-limit"
)

// Alert is one alert; Message is never empty.
type Alert struct {
	Type               string
	AccountSID         string
	ServiceProviderSID string
	Message            string
	Detail             string
}

// Alerter records operator alerts; it must not block. Every part that
// writes alerts (registrar, webhook, regbot, gateway pinger) takes one.
type Alerter interface {
	Alert(ctx context.Context, a Alert)
}

// Discard drops alerts.
type Discard struct{}

// Alert does nothing.
func (Discard) Alert(context.Context, Alert) {}

// Log writes alerts to a logger; used when no InfluxDB is configured.
type Log struct{ Logger *slog.Logger }

// Alert logs a.
func (l Log) Alert(_ context.Context, a Alert) {
	l.Logger.Warn("alert", "alert_type", a.Type, "account_sid", a.AccountSID,
		"service_provider_sid", a.ServiceProviderSID, "message", a.Message, "detail", a.Detail)
}
