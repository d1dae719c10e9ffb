// Package app assembles the service from its parts according to the
// configuration and runs it until the context ends.
package app

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/cli"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/options"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Run runs the service until ctx is cancelled. Shutdown runs in reverse:
// the regbot un-registers, the front stops, then HTTP, then every
// background job ends, then the backend closes (the embedded store saves).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	m, closeMetrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()

	// Backend: state and directory of the configured mode, with their
	// readiness checks and background probes.
	be, err := openBackend(ctx, cfg, m, log)
	if err != nil {
		return err
	}
	defer be.close()
	j := newJobs(ctx)
	defer j.stop()
	checks := health.New(0)
	be.start(j, checks)
	regEvents := openEvents(ctx, cfg, be.events, m, log)
	defer regEvents.close() // first: the last events go out before the jobs stop and the backend closes

	// Handlers, and the front that feeds them.
	alerter := newAlerter(cfg, j, log)
	cipher, err := newCipher(cfg, log)
	if err != nil {
		return err
	}
	mux := handlers(cfg, be, regEvents.publisher(), alerter, cipher, m, log)
	front, err := openFront(ctx, cfg, mux, mux.Methods(), be, j, log)
	if err != nil {
		return err
	}
	checks.Add(front.name, front.check)

	// Background jobs.
	cliServer := runCLI(j, cfg.SocketPath, be.members, be.registrations, log)
	cli.RegisterEvents(cliServer, regEvents.stream())
	out := outbound{cfg: cfg, be: be, front: front, alerter: alerter, cipher: cipher, log: log}
	rb := out.newRegbot(j, cliServer, m)
	j.Go(out.runPinger)
	j.Go(func(ctx context.Context) { be.members.Run(ctx, cfg.CheckExpires) })
	j.every(cfg.CheckExpires, func(ctx context.Context) { gaugeMembers(ctx, be.members, m) })
	j.every(30*time.Second, func(ctx context.Context) { pruneActiveUsers(ctx, regEvents.counter(be.registrations), m, log) })
	j.Go(func(ctx context.Context) {
		if frontReady(ctx, front) {
			front.addresses.Run(ctx, cfg.SBCKeepAlive)
		}
	})

	// HTTP: metrics, health, readiness.
	if cfg.HTTPListen != "" {
		stopHTTP, err := serveHTTP(j, cfg.HTTPListen, cfg.PProf, m, checks, log)
		if err != nil {
			front.close()
			return err
		}
		defer stopHTTP()
	}
	// Wait; the deferred calls above are the shutdown.
	return serve(ctx, front, rb)
}

// jobs owns the background goroutines: each runs until the context of
// Run ends, and stop waits for all of them.
type jobs struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newJobs(ctx context.Context) *jobs {
	ctx, cancel := context.WithCancel(ctx)
	return &jobs{ctx: ctx, cancel: cancel}
}

// Go runs fn until the jobs stop.
func (j *jobs) Go(fn func(ctx context.Context)) { j.wg.Go(func() { fn(j.ctx) }) }

// every runs fn each interval until the jobs stop.
func (j *jobs) every(interval time.Duration, fn func(ctx context.Context)) {
	j.Go(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	})
}

// stop ends every job and waits for them.
func (j *jobs) stop() {
	j.cancel()
	j.wg.Wait()
}

// newAlerter writes alerts to InfluxDB (JAMBONES_TIME_SERIES_HOST) or the log.
func newAlerter(cfg *config.Config, j *jobs, log *slog.Logger) alerts.Alerter {
	if cfg.TimeSeriesHost == "" {
		return alerts.Log{Logger: log}
	}
	influx := alerts.NewInflux(alerts.InfluxOptions{URL: alerts.InfluxURL(cfg.TimeSeriesHost), Database: "alerts", Log: log})
	j.Go(func(ctx context.Context) { _ = influx.Run(ctx) })
	return influx
}

// newCipher decrypts stored passwords (ENCRYPTION_SECRET); nil without one.
func newCipher(cfg *config.Config, log *slog.Logger) (*credcrypt.Cipher, error) {
	if cfg.EncryptionSecret == "" {
		log.Warn("ENCRYPTION_SECRET is not set: encrypted client passwords cannot be checked")
		return nil, nil
	}
	return credcrypt.New(cfg.EncryptionSecret, cfg.LegacyCrypto)
}

// handlers routes REGISTER to the registrar and OPTIONS to the membership
// check-ins.
func handlers(cfg *config.Config, be *backend, pub events.Publisher, alerter alerts.Alerter, cipher *credcrypt.Cipher, m *metrics.Metrics, log *slog.Logger) *sipfront.Mux {
	sec := cfg.Security
	scanners := sec.ScannerAgents
	if len(scanners) == 0 {
		scanners = guard.DefaultScanners
	}
	regGuard := guard.New(guard.Config{
		RatePerIP:     float64(sec.RatePerIP),
		Burst:         sec.RateBurst,
		FailuresPerIP: sec.FailuresPerIP,
		FailuresAoR:   sec.FailuresAoR,
		Window:        sec.FailureWindow,
		BanFor:        sec.BanFor,
		Drop:          sec.Drop,
		ScannerAgents: scanners,
	}, be.bans, log)
	nonces := nonce.New(sec.NonceSecret, sec.NonceTTL, 0)
	switch {
	case sec.NonceSecret == "":
		log.Info("NONCE_SECRET is not set: nonces verify on this instance only")
	case be.claims != nil:
		// Instances accept each other's nonces: a nonce count must be
		// claimed cluster-wide, or a copy sent to another instance would
		// pass while the original is at the webhook.
		nonces.Share(be.claims, cfg.ClusterID+":")
	}
	webhook := auth.NewWebhook(cfg.WebhookTimeout, cfg.HTTPUserAgent, alerter, log)
	webhook.Observe = m.ObserveWebhook
	webhook.SetMaxConcurrentPerAccount(cfg.WebhookMaxConcurrent)
	reg := registrar.New(registrar.Deps{
		Nonces:     nonces,
		MaxExpires: sec.MaxExpires,
		MinExpires: sec.MinExpires,
		Guard:      regGuard,
		Algorithms: sec.DigestAlgorithms,
		Store:      be.registrations,
		Directory:  be.directory,
		Webhook:    webhook,
		Clients:    auth.NewClients(be.directory, cipher, log),
		Alerter:    alerter,
		Log:        log,
		Hosting:    cfg.Hosting,
		Observe:    observeRegister(m),
		Events:     pub,
	})
	mux := sipfront.NewMux()
	mux.Handle("REGISTER", reg)
	mux.Handle("OPTIONS", options.New(be.members, checkInTrusted(cfg), log))
	return mux
}

// runCLI starts the runtime CLI socket server. A socket that cannot be
// created is logged, not fatal: SIP service matters more than the CLI.
func runCLI(j *jobs, path string, sets cli.FeatureServers, regs cli.Registrations, log *slog.Logger) *cli.Server {
	srv := cli.NewServer(path, log)
	cli.RegisterFeatureServers(srv, sets)
	cli.RegisterRegistrations(srv, regs, time.Now)
	// The original's generic settings actions (set, get, add, remove, list): operator tooling
	// written for the Node.js sidecar may send them.
	cli.RegisterSettings(srv, cli.NewSettings())
	ln, err := srv.Listen()
	if err != nil {
		log.Error("cli: runtime CLI not available", "err", err)
		return srv // commands may still be registered; nobody can call them
	}
	j.Go(func(ctx context.Context) {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("cli: server stopped", "err", err)
		}
	})
	return srv
}

// checkInTrusted accepts feature/RTP server check-ins from the private
// networks (JAMBONES_NETWORK_CIDR) and from this host (loopback), unless
// JAMBONES_NETWORK_CIDR lists loopback ranges itself: then exactly those.
func checkInTrusted(cfg *config.Config) func(netip.Addr) bool {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	implicit := true
	for _, p := range cfg.NetworkCIDRs {
		if p.Overlaps(loopback) {
			implicit = false
		}
	}
	return func(a netip.Addr) bool {
		a = a.Unmap()
		return (implicit && a.IsLoopback()) || cfg.InNetwork(a)
	}
}

// gaugeMembers feeds the feature/RTP server member gauges.
func gaugeMembers(ctx context.Context, sets *membership.Sets, m *metrics.Metrics) {
	for _, kind := range membership.Kinds {
		if members, err := sets.Members(ctx, kind.Set()); err == nil {
			m.SetMembers(kind, len(members))
		}
	}
}

// pruneActiveUsers removes expired members of active-user, as the original
// does before counting; the count feeds the active-bindings gauge
// (sbc.users.count in StatsD).
func pruneActiveUsers(ctx context.Context, regs activeCounter, m *metrics.Metrics, log *slog.Logger) {
	n, err := regs.Count(ctx)
	if err != nil {
		log.Warn("store: pruning active-user failed", "err", err)
		return
	}
	m.SetActiveBindings(n)
	log.Debug("registered users", "count", n)
}
