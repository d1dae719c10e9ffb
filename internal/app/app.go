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
		go func() { _ = influx.Run(ctx) }()
		alerter = influx
	}
	reg := registrar.New(registrar.Deps{
		Store:     store,
		Directory: dir,
		Webhook:   auth.NewWebhook(cfg.WebhookTimeout, cfg.HTTPUserAgent, alerter, log),
		Clients:   auth.NewClients(dir, cipher, log),
		Alerter:   alerter,
		Log:       log,
		Hosting:   cfg.Hosting,
	})

	mux := sipfront.NewMux()
	mux.Handle("REGISTER", reg)
	mux.Handle("OPTIONS", options.Handler{})

	front, err := native.New(native.Options{
		Listen:        cfg.SIPListen,
		PublicAddress: cfg.SIPPublicAddress,
		InNetwork:     cfg.InNetwork,
		UserAgent:     "sbc-sip-sidecar/" + config.Version,
		Log:           log,
	}, mux, mux.Methods())
	if err != nil {
		return err
	}
	if err := front.Listen(ctx); err != nil {
		return err
	}

	go pruneActiveUsers(ctx, store, log)
	return serveWithOutbound(ctx, cfg, log, front, outboundDeps{
		rdb: rdb, carriers: mysqldir.NewCarriers(readDB, writeDB), alerter: alerter, cipher: cipher,
	})
}

// alertWriter is what the parts writing alerts need.
type alertWriter interface {
	Alert(ctx context.Context, a alerts.Alert)
}

// pruneActiveUsers removes expired members of active-user periodically, as
// the original does before counting.
func pruneActiveUsers(ctx context.Context, store *redisstore.Store, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := store.Count(ctx)
			if err != nil {
				log.Warn("redis: pruning active-user failed", "err", err)
				continue
			}
			log.Debug("registered users", "count", n)
		}
	}
}
