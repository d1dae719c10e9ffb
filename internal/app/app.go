// Package app assembles the service from its parts according to the
// configuration and runs it until the context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/options"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// Run runs the service until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if !cfg.MySQL.Enabled() {
		return errors.New("config: JAMBONES_MYSQL_HOST is required")
	}
	if !cfg.Redis.Enabled() {
		return errors.New("config: JAMBONES_REDIS_HOST (or JAMBONES_REDIS_SENTINELS) is required")
	}
	if cfg.Drachtio.Enabled() {
		return errors.New("config: the drachtio front is not available yet; unset DRACHTIO_HOST to use the native SIP front (SIP_LISTEN)")
	}

	m, closeMetrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	checks := health.New(0)

	rdb, err := redisconn.Open(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		// Not fatal: REGISTERs are answered 503 until Redis is back.
		log.Warn("redis: not reachable at start-up", "err", err)
	}
	store := redisstore.New(rdb)
	checks.Add("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })

	readDB, err := mysqldir.Open(cfg.MySQL)
	if err != nil {
		return err
	}
	defer readDB.Close()
	writeDB := readDB
	if cfg.MySQLWrite.Enabled() {
		if writeDB, err = mysqldir.Open(cfg.MySQLWrite); err != nil {
			return err
		}
		defer writeDB.Close()
	}
	dir, err := mysqldir.New(ctx, readDB, writeDB)
	if err != nil {
		return fmt.Errorf("%w (is MySQL at %s:%d reachable?)", err, cfg.MySQL.Host, cfg.MySQL.Port)
	}
	defer dir.Close()
	checks.Add("mysql", health.PingCheck(readDB))

	var cipher *credcrypt.Cipher
	if cfg.EncryptionSecret != "" {
		if cipher, err = credcrypt.New(cfg.EncryptionSecret, cfg.LegacyCrypto); err != nil {
			return err
		}
	} else {
		log.Warn("ENCRYPTION_SECRET is not set: encrypted client passwords cannot be checked")
	}

	alerter := alerts.Log{Logger: log}
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
	}, redisstore.NewBans(rdb, cfg.ClusterID), log)
	if sec.NonceSecret == "" {
		log.Info("NONCE_SECRET is not set: nonces verify on this instance only")
	}
	webhook := auth.NewWebhook(cfg.WebhookTimeout, cfg.HTTPUserAgent, alerter, log)
	webhook.Observe = m.ObserveWebhook
	reg := registrar.New(registrar.Deps{
		Nonces:    nonce.New(sec.NonceSecret, sec.NonceTTL, 0),
		Guard:     regGuard,
		Store:     countingStore{store, m},
		Directory: countingDirectory{dir, m},
		Webhook:   webhook,
		Clients:   auth.NewClients(countingDirectory{dir, m}, cipher, log),
		Alerter:   alerter,
		Log:       log,
		Hosting:   cfg.Hosting,
		Observe:   observeRegister(m),
	})

	mux := sipfront.NewMux()
	mux.Handle("REGISTER", reg)
	mux.Handle("OPTIONS", options.Handler{})

	var cert *native.Certificate
	if cfg.SIPTLSCertFile != "" {
		if cert, err = native.LoadCertificate(cfg.SIPTLSCertFile, cfg.SIPTLSKeyFile); err != nil {
			return err
		}
		go reloadTLSOnSIGHUP(ctx, cert.Reload, log)
	}
	front, err := native.New(native.Options{
		Listen:        cfg.SIPListen,
		PublicAddress: cfg.SIPPublicAddress,
		InNetwork:     cfg.InNetwork,
		UserAgent:     "sbc-sip-sidecar/" + config.Version,
		Log:           log,
		TLS:           cert,
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
	if cfg.HTTPPort > 0 {
		stopHTTP, err := serveHTTP(ctx, cfg.HTTPPort, m, checks, log)
		if err != nil {
			front.Close()
			return err
		}
		defer stopHTTP()
	}

	go pruneActiveUsers(ctx, store, m, log)
	return front.Serve(ctx)
}

// pruneActiveUsers removes expired members of active-user periodically, as
// the original does before counting.
// The count feeds the active-bindings gauge (sbc.users.count in StatsD).
func pruneActiveUsers(ctx context.Context, store *redisstore.Store, m *metrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := store.Count(ctx)
			if err != nil {
				m.BackendError(metrics.Redis)
				log.Warn("redis: pruning active-user failed", "err", err)
				continue
			}
			m.SetActiveBindings(n)
			log.Debug("registered users", "count", n)
		}
	}
}
