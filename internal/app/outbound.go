package app

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/cli"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
)

// outbound is what the front originates: carrier registration (regbot)
// and gateway OPTIONS pings.
type outbound struct {
	cfg     *config.Config
	be      *backend
	front   *sipFront
	alerter alerts.Alerter
	cipher  *credcrypt.Cipher
	log     *slog.Logger
}

// newRegbot builds the regbot; its status goes to the CLI and the metrics.
func (o outbound) newRegbot(j *jobs, srv *cli.Server, m *metrics.Metrics) *regbot.Regbot {
	deps := regbot.Deps{
		Store: o.be.kv, Carriers: o.be.carriers, Client: o.front.client, Alerter: o.alerter,
		PublicAddress: o.front.publicAddress, Log: o.log,
	}
	if o.cipher != nil {
		deps.Cipher = o.cipher
	}
	opts := regbot.Options{Regbot: o.cfg.Regbot, ClusterID: o.cfg.ClusterID, UnregisterTimeout: 5 * time.Second}
	opts.StartDelayMax = o.be.startDelayMax
	rb := regbot.New(deps, opts)
	cli.RegisterRegbot(srv, func() any {
		s := rb.Status()
		s.Agents = rb.Agents()
		return s
	})
	j.every(o.cfg.Regbot.StatusInterval, func(context.Context) { gaugeRegbot(rb, m) })
	return rb
}

// runPinger pings the gateways once the front can send; From carries the
// front's address, known only then (drachtio's hostports).
func (o outbound) runPinger(ctx context.Context) {
	if !frontReady(ctx, o.front) {
		return
	}
	fromHost := "localhost"
	if host, _, err := net.SplitHostPort(o.front.publicAddress("udp")); err == nil {
		fromHost = host
	}
	_ = pinger.New(o.be.carriers, o.be.kv, o.front.client, o.alerter, pinger.Options{
		Every: o.cfg.OptionsPingEvery, TTL: o.cfg.OptionsPingTTL, Remove: o.cfg.OptionsRemove,
		FromHost: fromHost, UserAgent: o.cfg.Regbot.UserAgent,
	}, o.log).Run(ctx)
}

// serve serves the front until ctx ends. Like the original (started on
// drachtio's "connect"), the regbot sends nothing before the front can: a
// REGISTER failing then would wait for the failure retry interval (5 min).
// On shutdown the regbot un-registers while the front still serves; then
// the front stops. Both goroutines end before serve returns.
func serve(ctx context.Context, front *sipFront, rb *regbot.Regbot) error {
	frontCtx, stopFront := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFront()
	served := make(chan error, 1)
	go func() { served <- front.serve(frontCtx) }()
	regbotCtx, stopRegbot := context.WithCancel(ctx)
	defer stopRegbot()
	regbotDone := make(chan struct{})
	go func() {
		defer close(regbotDone)
		if frontReady(regbotCtx, front) {
			_ = rb.Run(regbotCtx)
		}
	}()

	select {
	case err := <-served: // the front failed
		stopRegbot()
		<-regbotDone
		return err
	case <-ctx.Done():
	}
	<-regbotDone // un-registers within its deadline while the sockets are open
	stopFront()
	return <-served
}

// gaugeRegbot feeds the regbot agent gauges.
func gaugeRegbot(rb *regbot.Regbot, m *metrics.Metrics) {
	st := rb.Status()
	m.SetRegbotAgents("registered", st.Registered)
	m.SetRegbotAgents("unregistered", st.Total-st.Registered)
}
