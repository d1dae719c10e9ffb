package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// Directory is what the service needs of a directory (MySQL or file).
type Directory interface {
	registrar.Directory
}

// Mode says where the data comes from.
type Mode struct {
	EmbeddedStore bool // no Redis: memstore
	Demo          bool // no MySQL and no config file: the built-in directory
}

// ModeOf derives the mode from the configuration.
func ModeOf(cfg *config.Config) Mode {
	return Mode{EmbeddedStore: !cfg.Redis.Enabled(), Demo: !cfg.MySQL.Enabled() && cfg.ConfigFile == ""}
}

// demoListen applies demo mode's loopback default.
func demoListen(cfg *config.Config) []config.Listen {
	if ModeOf(cfg).Demo && !cfg.SIPListenSet {
		l, _ := config.ParseListen(config.DemoListen) // a constant that parses
		return l
	}
	return cfg.SIPListen
}

// Banner is the text printed at start-up in demo mode ("" otherwise): the
// realm, user, password and addresses a newcomer needs to register.
func Banner(cfg *config.Config) string {
	m := ModeOf(cfg)
	if !m.Demo {
		return ""
	}
	var addrs []string
	loopback := true
	for _, l := range demoListen(cfg) {
		addrs = append(addrs, l.String())
		if !strings.HasPrefix(l.Host, "127.") && l.Host != "::1" {
			loopback = false
		}
	}
	store := "Redis"
	if m.EmbeddedStore {
		store = "embedded, saved in " + cfg.StateFile
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nsbc-sip-sidecar %s: DEMO MODE (no MySQL, no --config file): built-in configuration\n", config.Version)
	fmt.Fprintf(&b, "  SIP realm (domain): %s\n", filedir.DemoRealm)
	fmt.Fprintf(&b, "  user / password:    %s / %s\n", filedir.DemoUser, filedir.DemoPassword)
	fmt.Fprintf(&b, "  listening:          %s\n", strings.Join(addrs, ", "))
	fmt.Fprintf(&b, "  registrations:      %s\n", store)
	if loopback {
		b.WriteString("  Loopback only, because the demo password is public; set SIP_LISTEN to change it.\n")
	} else {
		b.WriteString("  WARNING: listening beyond loopback with the public demo password: anyone who reaches\n" +
			"  these addresses can register. Use --config FILE for real accounts.\n")
	}
	b.WriteString("\n")
	return b.String()
}

// storage is what the configuration chose to keep state in: Redis when
// configured (rdb set), the embedded store otherwise (mem set).
type storage struct {
	Store store.Registrations
	rdb   redis.UniversalClient
	// health is Redis' circuit breaker (with rdb).
	health *breaker.Breaker
	mem    *memstore.Store
	// run, when not nil, must run until shutdown (periodic saves).
	run func(context.Context)
	// close saves and releases.
	close func()
}

// bans returns where the guard keeps bans: Redis, so that instances agree,
// or a bounded in-process store.
func (s storage) bans(cluster string) guard.Bans {
	if s.rdb == nil {
		kv, _ := memstore.Open(memstore.Options{MaxKeys: 200_000}) // no file: cannot fail
		return store.NewBans(kv, cluster)
	}
	return store.NewBans(redisstore.NewKV(s.rdb), cluster)
}

// openStore returns the Redis store, or the embedded one when Redis is not
// configured.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (storage, error) {
	if !cfg.Redis.Enabled() {
		ms, err := memstore.Open(memstore.Options{Path: cfg.StateFile, Log: log})
		if err != nil {
			return storage{}, err
		}
		log.Info("store: embedded (no JAMBONES_REDIS_HOST)", "state_file", cfg.StateFile)
		return storage{Store: ms, mem: ms, run: ms.Run, close: func() {
			if err := ms.Close(); err != nil {
				log.Error("store: saving state at shutdown failed", "state_file", cfg.StateFile, "err", err)
				return
			}
			log.Info("store: state saved", "state_file", cfg.StateFile)
		}}, nil
	}
	rdb, health, err := redisconn.Open(cfg.Redis, cfg.BackendProbeInterval, log)
	if err != nil {
		return storage{}, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		// Not fatal: REGISTERs are answered 503 until Redis is back (the
		// failed ping opened the breaker; its probe closes it).
		log.Warn("redis: not reachable at start-up", "err", err)
	}
	return storage{Store: redisstore.New(rdb), rdb: rdb, health: health, close: func() { rdb.Close() }}, nil
}

// openDirectory returns the MySQL directory and its read pool's circuit
// breaker, or the file (or demo) one (no breaker) when MySQL is not
// configured.
func openDirectory(ctx context.Context, cfg *config.Config, log *slog.Logger) (Directory, *breaker.Breaker, func(), error) {
	if !cfg.MySQL.Enabled() {
		var (
			d   *filedir.Directory
			err error
		)
		if cfg.ConfigFile == "" {
			d, err = filedir.Demo()
		} else {
			d, err = filedir.Load(cfg.ConfigFile)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		accounts, clients, carriers := d.Counts()
		log.Info("directory: config file (no JAMBONES_MYSQL_HOST)", "file", d.Source(),
			"accounts", accounts, "clients", clients, "carriers", carriers)
		if cfg.ConfigFile == "" {
			log.Info("demo mode", "realm", filedir.DemoRealm, "user", filedir.DemoUser,
				"password", filedir.DemoPassword)
		}
		return d, nil, func() {}, nil
	}
	// The write pool (sbc_addresses upkeep, outbound registration status)
	// serves background work only and has no breaker of its own; when it is
	// the read pool, it shares the read pool's.
	readDB, health, err := mysqldir.OpenWithBreaker(cfg.MySQL, cfg.BackendProbeInterval, log)
	if err != nil {
		return nil, nil, nil, err
	}
	writeDB := readDB
	if cfg.MySQLWrite.Enabled() {
		if writeDB, err = mysqldir.Open(cfg.MySQLWrite); err != nil {
			readDB.Close()
			return nil, nil, nil, err
		}
	}
	closeDBs := func() {
		if writeDB != readDB {
			writeDB.Close()
		}
		readDB.Close()
	}
	dir, err := mysqldir.New(ctx, readDB, writeDB)
	if err != nil {
		closeDBs()
		return nil, nil, nil, fmt.Errorf("%w (is MySQL at %s:%d reachable?)", err, cfg.MySQL.Host, cfg.MySQL.Port)
	}
	return dir.WithBreaker(health), health, func() { dir.Close(); closeDBs() }, nil
}
