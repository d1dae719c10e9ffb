// Package app assembles the service from its parts according to the
// configuration and runs it until the context ends.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/cli"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/cached"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/options"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sbcaddr"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// Run runs the service until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	m, closeMetrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	// Background work is owned here and waited for on the way out.
	var bg sync.WaitGroup
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	checks := health.New(0)

	// No Redis: embedded store; no MySQL: config file or built-in demo.
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.close() // after the front stopped: saves the embedded store
	if st.run != nil {
		storeCtx, stopStore := context.WithCancel(ctx)
		defer stopStore()
		go st.run(storeCtx)
	}
	// Each backend has a circuit breaker: calls fail at once while it is
	// down, one probe per BACKEND_PROBE_INTERVAL_MS finds it back, and
	// /ready reports the state (docs/reliability.md).
	if st.rdb != nil {
		rdb := st.rdb
		checks.Add("redis", st.health.Check(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }))
		bg.Go(func() { st.health.Run(ctx) })
	}
	store := st.Store
	dir, dirHealth, closeDir, err := openDirectory(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDir()
	mysql, _ := dir.(*mysqldir.Directory)
	if mysql != nil {
		checks.Add("mysql", dirHealth.Check(health.PingCheck(mysql.Read())))
		bg.Go(func() { dirHealth.Run(ctx) })
	}

	var cipher *credcrypt.Cipher
	if cfg.EncryptionSecret != "" {
		if cipher, err = credcrypt.New(cfg.EncryptionSecret, cfg.LegacyCrypto); err != nil {
			return err
		}
	} else {
		log.Warn("ENCRYPTION_SECRET is not set: encrypted client passwords cannot be checked")
	}

	var alerter alertWriter = alerts.Log{Logger: log}
	if cfg.TimeSeriesHost != "" {
		influx := alerts.NewInflux(alerts.InfluxOptions{URL: alerts.InfluxURL(cfg.TimeSeriesHost), Database: "alerts", Log: log})
		bg.Go(func() { _ = influx.Run(ctx) })
		alerter = influx
	}
	scanners := cfg.Security.ScannerAgents
	if len(scanners) == 0 {
		scanners = guard.DefaultScanners
	}
	sec := cfg.Security
	regGuard := guard.New(guard.Config{
		RatePerIP:     float64(sec.RatePerIP),
		Burst:         sec.RateBurst,
		FailuresPerIP: sec.FailuresPerIP,
		FailuresAoR:   sec.FailuresAoR,
		Window:        sec.FailureWindow,
		BanFor:        sec.BanFor,
		Drop:          sec.Drop,
		ScannerAgents: scanners,
	}, st.bans(cfg.ClusterID), log)
	nonces := nonce.New(sec.NonceSecret, sec.NonceTTL, 0)
	switch {
	case sec.NonceSecret == "":
		log.Info("NONCE_SECRET is not set: nonces verify on this instance only")
	case st.rdb != nil:
		// Instances accept each other's nonces: a nonce count must be
		// claimed cluster-wide, or a copy sent to another instance would
		// pass while the original is at the webhook.
		nonces.Share(redisstore.NewKV(st.rdb), cfg.ClusterID+":")
	}
	var lookups registrar.Directory = countingDirectory{dir, m}
	if mysql != nil && cfg.DirectoryCacheTTL > 0 {
		lookups = cached.New(lookups, cfg.DirectoryCacheTTL, 100_000).WithStale(cfg.DirectoryCacheStale)
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
		Store:      countingStore{store, m},
		Directory:  lookups,
		Webhook:    webhook,
		Clients:    auth.NewClients(lookups, cipher, log),
		Alerter:    alerter,
		Log:        log,
		Hosting:    cfg.Hosting,
		Observe:    observeRegister(m),
	})

	mux := sipfront.NewMux()
	mux.Handle("REGISTER", reg)
	sets := openMembership(cfg, st, log)
	mux.Handle("OPTIONS", options.New(sets, checkInTrusted(cfg), log))

	bg.Go(func() { sets.Run(ctx, cfg.CheckExpires) })
	cliServer := runCLI(ctx, &bg, cfg.SocketPath, sets, store, log)
	outbound := newOutboundDeps(ctx, cfg, st, dir, log)
	if outbound != nil {
		outbound.alerter, outbound.cipher, outbound.cli, outbound.metrics = alerter, cipher, cliServer, m
	} else {
		log.Warn("outbound registration and gateway pings: no usable store or directory, not running")
	}
	bg.Go(func() { every(ctx, 30*time.Second, func() { pruneActiveUsers(ctx, store, m, log) }) })
	bg.Go(func() { every(ctx, cfg.CheckExpires, func() { gaugeMembers(ctx, sets, m) }) })
	if mysql != nil && !cfg.Drachtio.Enabled() {
		keeper := sbcaddr.New(mysql.Write(), sbcaddr.Public(cfg.SIPListen, cfg.SIPPublicAddress, sbcaddr.InterfaceAddrs()), cfg.DeadSBC, log)
		bg.Go(func() { keeper.Run(ctx, cfg.SBCKeepAlive) })
	}

	if cfg.Drachtio.Enabled() {
		// Inside a jambonz SBC: drachtio-server owns the SIP port.
		tlsConf, err := drachtioTLS(cfg.Drachtio)
		if err != nil {
			return err
		}
		var front *drachtiofront.Front
		var keeper *sbcaddr.Keeper
		var onSession func()
		if mysql != nil {
			// The public addresses are drachtio's hostports, known once
			// connected and possibly different after a reconnect.
			keeper = sbcaddr.NewFunc(mysql.Write(), func() []sbcaddr.Address { return drachtioPublic(front.PublicAddresses()) }, cfg.DeadSBC, log)
			onSession = keeper.Kick
		}
		front, err = drachtiofront.New(drachtiofront.Options{
			Addr:      net.JoinHostPort(cfg.Drachtio.Host, strconv.Itoa(cfg.Drachtio.Port)),
			Secret:    cfg.Drachtio.Secret,
			TLS:       tlsConf,
			InNetwork: cfg.InNetwork,
			OnSession: onSession,
			Log:       log,
		}, mux, mux.Methods())
		if err != nil {
			return err
		}
		if keeper != nil {
			bg.Go(func() {
				select {
				case <-front.Ready():
					keeper.Run(ctx, cfg.SBCKeepAlive)
				case <-ctx.Done():
				}
			})
		}
		checks.Add("drachtio", func(context.Context) error {
			if !front.Connected() {
				return errors.New("not connected to drachtio-server")
			}
			return nil
		})
		if cfg.HTTPListen != "" {
			stopHTTP, err := serveHTTP(ctx, cfg.HTTPListen, cfg.PProf, m, checks, log)
			if err != nil {
				return err
			}
			defer stopHTTP()
		}
		return serveWithOutbound(ctx, cfg, log, front, front, outbound)
	}

	var cert *native.Certificate
	if cfg.SIPTLSCertFile != "" {
		if cert, err = native.LoadCertificate(cfg.SIPTLSCertFile, cfg.SIPTLSKeyFile); err != nil {
			return err
		}
		bg.Go(func() { reloadTLSOnSIGHUP(ctx, cert.Reload, log) })
	}
	front, err := native.New(native.Options{
		Listen:        demoListen(cfg),
		PublicAddress: cfg.SIPPublicAddress,
		InNetwork:     cfg.InNetwork,
		UserAgent:     "sbc-sip-sidecar/" + config.Version,
		Log:           log,
		TLS:           cert,
		UDPSockets:    cfg.SIPLimits.UDPSockets,
		Limits: native.Limits{
			MaxConnections:      cfg.SIPLimits.MaxConnections,
			MaxConnectionsPerIP: cfg.SIPLimits.MaxConnectionsPerIP,
			HandshakeTimeout:    cfg.SIPLimits.HandshakeTimeout,
			IdleTimeout:         cfg.SIPLimits.IdleTimeout,
			MaxMessageSize:      cfg.SIPLimits.MaxMessageSize,
			UDPStateTTL:         cfg.SIPLimits.UDPStateTTL,
		},
	}, mux, mux.Methods())
	if err != nil {
		return err
	}
	if err := front.Listen(ctx); err != nil {
		return err
	}
	checks.Add("sip", func(context.Context) error {
		if !front.Listening() {
			return errors.New("not listening")
		}
		return nil
	})
	if cfg.HTTPListen != "" {
		stopHTTP, err := serveHTTP(ctx, cfg.HTTPListen, cfg.PProf, m, checks, log)
		if err != nil {
			front.Close()
			return err
		}
		defer stopHTTP()
	}
	client, err := front.NewClient(0)
	if err != nil {
		front.Close()
		return err
	}
	return serveWithOutbound(ctx, cfg, log, front, client, outbound)
}

// alertWriter is what the parts writing alerts need.
type alertWriter interface {
	Alert(ctx context.Context, a alerts.Alert)
}

// runCLI starts the runtime CLI socket server. A socket that cannot be
// created is logged, not fatal: SIP service matters more than the CLI.
func runCLI(ctx context.Context, bg *sync.WaitGroup, path string, sets cli.FeatureServers, regs cli.Registrations, log *slog.Logger) *cli.Server {
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
	bg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("cli: server stopped", "err", err)
		}
	})
	return srv
}

// Membership is what the service needs of the feature/RTP server sets.
type Membership interface {
	options.Membership
	cli.FeatureServers
	Run(ctx context.Context, interval time.Duration)
}

// openMembership keeps the sets in Redis, or in process in standalone mode.
func openMembership(cfg *config.Config, st storage, log *slog.Logger) Membership {
	if st.rdb == nil {
		return membership.NewMemory(cfg.ExpiresInterval, log)
	}
	return membership.New(st.rdb, cfg.ClusterID, cfg.ExpiresInterval, log)
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

// every runs fn each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// gaugeMembers feeds the feature/RTP server member gauges.
func gaugeMembers(ctx context.Context, sets Membership, m *metrics.Metrics) {
	for _, kind := range membership.Kinds {
		if members, err := sets.Members(ctx, kind.Set()); err == nil {
			m.SetMembers(kind, len(members))
		}
	}
}

// pruneActiveUsers removes expired members of active-user, as the original
// does before counting; the count feeds the active-bindings gauge
// (sbc.users.count in StatsD).
func pruneActiveUsers(ctx context.Context, store Store, m *metrics.Metrics, log *slog.Logger) {
	n, err := store.Count(ctx)
	if err != nil {
		m.BackendError(metrics.Redis)
		log.Warn("store: pruning active-user failed", "err", err)
		return
	}
	m.SetActiveBindings(n)
	log.Debug("registered users", "count", n)
}
