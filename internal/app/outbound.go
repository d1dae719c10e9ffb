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
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// outboundKV is where regbot keeps its token and ephemeral gateways and the
// pinger its blacklist: Redis, or the embedded store.
type outboundKV interface {
	regbot.KV
	pinger.Blacklist
}

// outboundCarriers is where carriers and gateways come from: MySQL, or the
// config file.
type outboundCarriers interface {
	regbot.Carriers
	pinger.Gateways
}

type outboundDeps struct {
	kv       outboundKV
	carriers outboundCarriers
	alerter  alerts.Alerter
	cipher   *credcrypt.Cipher
	cli      *cli.Server
	metrics  *metrics.Metrics
	// embedded: the token lives in this process, nobody contends for it.
	embedded bool
}

// newOutboundDeps picks the store and the carriers of the mode: Redis or
// the embedded store, MySQL or the config file, in any combination.
func newOutboundDeps(ctx context.Context, cfg *config.Config, st storage, dir Directory, log *slog.Logger) *outboundDeps {
	d := &outboundDeps{}
	switch {
	case st.rdb != nil:
		d.kv = redisstore.NewKV(st.rdb)
	case st.mem != nil:
		// The embedded store serves one instance, so a token in it is a
		// previous run's (saved with the state file): without this a restart
		// would wait for it to expire before registering.
		if _, err := st.mem.Del(ctx, regbot.TokenKey(cfg.ClusterID)); err != nil {
			log.Warn("regbot: clearing the previous run's token failed", "err", err)
		}
		d.kv, d.embedded = st.mem, true
	default:
		return nil
	}
	switch dir := dir.(type) {
	case *mysqldir.Directory:
		d.carriers = mysqldir.NewCarriers(dir.Read(), dir.Write())
	case *filedir.Directory:
		d.carriers = filedir.NewCarriers(dir, log)
	default:
		return nil
	}
	return d
}

// outboundFront is a SIP front that can originate requests.
type outboundFront interface {
	Serve(ctx context.Context) error
	PublicAddress(transport string) string
}

// serveWithOutbound serves the front and runs what it originates: carrier
// registration (regbot) and gateway OPTIONS pings. On shutdown the regbot
// un-registers before the front's sockets close.
func serveWithOutbound(ctx context.Context, cfg *config.Config, log *slog.Logger, front outboundFront, client sipfront.Client, d *outboundDeps) error {
	if d == nil {
		return front.Serve(ctx)
	}
	deps := regbot.Deps{
		Store: d.kv, Carriers: d.carriers, Client: client, Alerter: d.alerter,
		PublicAddress: front.PublicAddress, Log: log,
	}
	if d.cipher != nil {
		deps.Cipher = d.cipher
	}
	opts := regbot.Options{Regbot: cfg.Regbot, ClusterID: cfg.ClusterID, UnregisterTimeout: 5 * time.Second}
	if d.embedded {
		opts.StartDelayMax = 0 // the random delay only spreads instances contending for Redis
	}
	rb := regbot.New(deps, opts)
	cli.RegisterRegbot(d.cli, func() any { return rb.Status() })
	go every(ctx, cfg.Regbot.StatusInterval, func() { gaugeRegbot(rb, d.metrics) })

	frontCtx, stopFront := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFront()
	served := make(chan error, 1)
	go func() { served <- front.Serve(frontCtx) }()
	// Like the original (started on drachtio's "connect"), nothing is sent
	// before the front can send: a REGISTER failing then would wait for
	// the failure retry interval (5 min).
	go func() {
		if frontReady(ctx, front) {
			_ = newPinger(cfg, log, front, client, d).Run(ctx)
		}
	}()
	regbotDone := make(chan struct{})
	go func() {
		defer close(regbotDone)
		if frontReady(ctx, front) {
			_ = rb.Run(ctx)
		}
	}()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	<-regbotDone // un-registers within its deadline while the sockets are open
	stopFront()
	return <-served
}

// newPinger builds the gateway pinger; From carries the front's address,
// known once the front is ready (drachtio's hostports).
func newPinger(cfg *config.Config, log *slog.Logger, front outboundFront, client sipfront.Client, d *outboundDeps) *pinger.Pinger {
	fromHost := "localhost"
	if host, _, err := net.SplitHostPort(front.PublicAddress("udp")); err == nil {
		fromHost = host
	}
	return pinger.New(d.carriers, d.kv, client, d.alerter, pinger.Options{
		Every: cfg.OptionsPingEvery, TTL: cfg.OptionsPingTTL, Remove: cfg.OptionsRemove,
		FromHost: fromHost, UserAgent: cfg.Regbot.UserAgent,
	}, log)
}

// readier is a front that connects before it can send (the drachtio front).
type readier interface {
	Ready() <-chan struct{}
}

// frontReady waits until front can send requests; false when ctx ended first.
func frontReady(ctx context.Context, front outboundFront) bool {
	r, ok := front.(readier)
	if !ok {
		return ctx.Err() == nil
	}
	select {
	case <-r.Ready():
		return true
	case <-ctx.Done():
		return false
	}
}

// gaugeRegbot feeds the regbot agent gauges.
func gaugeRegbot(rb *regbot.Regbot, m *metrics.Metrics) {
	st := rb.Status()
	m.SetRegbotAgents("registered", st.Registered)
	m.SetRegbotAgents("unregistered", st.Total-st.Registered)
}
