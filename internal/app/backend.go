package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/cached"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/mysqldir"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/localbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events/redisbus"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/guard"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/redisconn"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sbcaddr"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/redisstore"
)

// backend is where the service keeps and finds its data, chosen once from
// the configuration: state (registrations, membership, bans, regbot's
// token, nonce claims) in Redis or in process, accounts and carriers in
// MySQL or a YAML file. Each mode is one constructor; nothing else in app
// asks which one runs (docs/architecture.md).
type backend struct {
	// registrations is the registrar's store (Redis failures counted).
	registrations store.Registrations
	// kv keeps regbot's token and ephemeral gateways and the pinger's blacklist.
	kv outboundKV
	// claims makes nonce counts cluster-wide; nil when one instance owns
	// the state (embedded): the issuer's own claims are enough.
	claims  nonce.SharedClaims
	bans    guard.Bans
	members *membership.Sets
	// events carries the registration events (docs/events.md): Redis
	// pub/sub, or the in-process bus with the embedded store.
	events events.Backend
	// startDelayMax spreads the regbot start of instances contending for
	// the token (0 when nobody contends).
	startDelayMax time.Duration

	// directory answers the registrar's lookups (MySQL: counted, cached).
	directory registrar.Directory
	// carriers feed regbot and the gateway pinger.
	carriers outboundCarriers
	// sbcAddresses returns the upkeep of this SBC's rows in sbc_addresses,
	// of the addresses src returns (nothing to keep with a file).
	sbcAddresses func(src sbcaddr.Source) addressKeeper

	// checks are the readiness checks (/ready) of the backends with a
	// circuit breaker; jobs run until shutdown (breaker probes, saves);
	// closers release, last first, once every job ended.
	checks  map[string]health.Check
	jobs    []func(ctx context.Context)
	closers []func()
}

// outboundKV is what regbot and the gateway pinger keep.
type outboundKV interface {
	regbot.KV
	pinger.Blacklist
}

// outboundCarriers is where carriers and gateways come from.
type outboundCarriers interface {
	regbot.Carriers
	pinger.Gateways
}

// addressKeeper keeps this SBC's rows in sbc_addresses.
type addressKeeper interface {
	Run(ctx context.Context, interval time.Duration)
	Kick()
}

// part fills the fields of one half of a backend: state or directory.
type part func(ctx context.Context, b *backend, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) error

// openBackend builds the backend of the configuration: Redis when
// JAMBONES_REDIS_HOST is set, in process otherwise; MySQL when
// JAMBONES_MYSQL_HOST is set, the config file (or demo) otherwise.
func openBackend(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*backend, error) {
	open := embeddedFile
	switch {
	case cfg.Redis.Enabled() && cfg.MySQL.Enabled():
		open = redisMySQL
	case cfg.Redis.Enabled():
		open = redisFile
	case cfg.MySQL.Enabled():
		open = embeddedMySQL
	}
	return open(ctx, cfg, m, log)
}

// The four modes.
func redisMySQL(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*backend, error) {
	return assemble(ctx, cfg, m, log, redisState, mysqlDirectory)
}

func embeddedFile(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*backend, error) {
	return assemble(ctx, cfg, m, log, embeddedState, fileDirectory)
}

func redisFile(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*backend, error) {
	return assemble(ctx, cfg, m, log, redisState, fileDirectory)
}

func embeddedMySQL(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*backend, error) {
	return assemble(ctx, cfg, m, log, embeddedState, mysqlDirectory)
}

// assemble builds a backend from its parts; on failure it releases what
// the earlier parts opened.
func assemble(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log *slog.Logger, parts ...part) (*backend, error) {
	b := &backend{checks: map[string]health.Check{}}
	for _, p := range parts {
		if err := p(ctx, b, cfg, m, log); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

// start registers the readiness checks and starts the jobs.
func (b *backend) start(j *jobs, checks *health.Registry) {
	for name, c := range b.checks {
		checks.Add(name, c)
	}
	for _, job := range b.jobs {
		j.Go(job)
	}
}

// close releases everything, last opened first.
func (b *backend) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// redisState keeps state in Redis, behind its circuit breaker: every
// instance of the cluster shares it.
func redisState(ctx context.Context, b *backend, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) error {
	rdb, breaker, err := redisconn.Open(cfg.Redis, cfg.BackendProbeInterval, log)
	if err != nil {
		return err
	}
	b.closers = append(b.closers, func() { rdb.Close() })
	if err := rdb.Ping(ctx); err != nil {
		// Not fatal: REGISTERs are answered 503 until Redis is back (the
		// failed ping opened the breaker; its probe closes it).
		log.Warn("redis: not reachable at start-up", "err", err)
	}
	kv := redisstore.NewKV(rdb)
	b.registrations = countingStore{redisstore.New(rdb), backendErrors{m, metrics.Redis}}
	b.kv, b.claims = kv, kv
	b.bans = store.NewBans(kv, kv, cfg.ClusterID)
	b.members = membership.New(rdb, cfg.ClusterID, cfg.ExpiresInterval, log)
	b.events = redisbus.New(rdb, cfg.ClusterID)
	b.startDelayMax = cfg.Regbot.StartDelayMax
	b.checks["redis"] = breaker.Check(rdb.Ping)
	b.jobs = append(b.jobs, breaker.Run)
	return nil
}

// maxBanKeys bounds the in-process bans, and the failure counts: sources on the
// internet are unbounded.
const maxBanKeys = 100_000

// embeddedState keeps state in process: registrations and regbot's keys
// in the store saved to SIDECAR_STATE_FILE, membership and bans in memory
// only (as before a restart, they are rebuilt by check-ins and failures).
func embeddedState(ctx context.Context, b *backend, cfg *config.Config, _ *metrics.Metrics, log *slog.Logger) error {
	st, err := memstore.Open(memstore.Options{Path: cfg.StateFile, Log: log})
	if err != nil {
		return err
	}
	log.Info("store: embedded (no JAMBONES_REDIS_HOST)", "state_file", cfg.StateFile)
	b.closers = append(b.closers, func() { // after every job ended: the last save
		if err := st.Close(); err != nil {
			log.Error("store: saving state at shutdown failed", "state_file", cfg.StateFile, "err", err)
			return
		}
		log.Info("store: state saved", "state_file", cfg.StateFile)
	})
	b.jobs = append(b.jobs, st.Run)
	// One instance owns the store, so a regbot token in it is a previous
	// run's (saved with the state file): without this a restart would wait
	// for it to expire before registering.
	if _, err := st.Del(ctx, regbot.TokenKey(cfg.ClusterID)); err != nil {
		log.Warn("regbot: clearing the previous run's token failed", "err", err)
	}
	bans, err := memstore.Open(memstore.Options{MaxKeys: maxBanKeys, Log: log})
	if err != nil {
		return err
	}
	failures, err := memstore.Open(memstore.Options{MaxKeys: maxBanKeys, Log: log})
	if err != nil {
		return err
	}
	members, err := memstore.Open(memstore.Options{Log: log})
	if err != nil {
		return err
	}
	b.registrations, b.kv = st, st
	b.events = &localbus.Backend{Bus: &events.Bus{}, Store: st}
	b.bans = store.NewBans(bans, failures, cfg.ClusterID)
	b.members = membership.NewEmbedded(members, cfg.ClusterID, cfg.ExpiresInterval, log)
	return nil
}

// mysqlDirectory reads accounts and carriers from MySQL, behind the read
// pool's circuit breaker, with the directory cache when configured.
func mysqlDirectory(ctx context.Context, b *backend, cfg *config.Config, m *metrics.Metrics, log *slog.Logger) error {
	// The write pool (sbc_addresses upkeep, outbound registration status)
	// serves background work only and has no breaker of its own; when it is
	// the read pool, it shares the read pool's.
	readDB, breaker, err := mysqldir.OpenWithBreaker(cfg.MySQL, cfg.BackendProbeInterval, log)
	if err != nil {
		return err
	}
	b.closers = append(b.closers, func() { readDB.Close() })
	writeDB := readDB
	if cfg.MySQLWrite.Enabled() {
		if writeDB, err = mysqldir.Open(cfg.MySQLWrite); err != nil {
			return err
		}
		b.closers = append(b.closers, func() { writeDB.Close() })
	}
	dir, err := mysqldir.New(ctx, readDB, writeDB)
	if err != nil {
		return fmt.Errorf("%w (is MySQL at %s:%d reachable?)", err, cfg.MySQL.Host, cfg.MySQL.Port)
	}
	b.closers = append(b.closers, dir.Close)
	var lookups registrar.Directory = countingDirectory{dir.WithBreaker(breaker), backendErrors{m, metrics.MySQL}}
	if cfg.DirectoryCacheTTL > 0 {
		lookups = cached.New(lookups, cfg.DirectoryCacheTTL, 100_000).WithStale(cfg.DirectoryCacheStale)
	}
	b.directory = lookups
	b.carriers = mysqldir.NewCarriers(readDB, writeDB)
	b.sbcAddresses = func(src sbcaddr.Source) addressKeeper {
		return sbcaddr.NewFunc(writeDB, src, cfg.DeadSBC, log)
	}
	b.checks["mysql"] = breaker.Check(health.PingCheck(readDB))
	b.jobs = append(b.jobs, breaker.Run)
	return nil
}

// fileDirectory reads accounts and carriers from the config file, or the
// built-in demo without one.
func fileDirectory(_ context.Context, b *backend, cfg *config.Config, _ *metrics.Metrics, log *slog.Logger) error {
	load := func() (*filedir.Directory, error) { return filedir.Load(cfg.ConfigFile) }
	if cfg.ConfigFile == "" {
		load = filedir.Demo
	}
	d, err := load()
	if err != nil {
		return err
	}
	accounts, clients, carriers := d.Counts()
	log.Info("directory: config file (no JAMBONES_MYSQL_HOST)", "file", d.Source(),
		"accounts", accounts, "clients", clients, "carriers", carriers)
	if cfg.ConfigFile == "" {
		log.Info("demo mode", "realm", filedir.DemoRealm, "user", filedir.DemoUser,
			"password", filedir.DemoPassword)
	}
	b.directory = d
	b.carriers = filedir.NewCarriers(d, log)
	b.sbcAddresses = func(sbcaddr.Source) addressKeeper { return noAddresses{} }
	return nil
}

// noAddresses keeps nothing: without MySQL there is no sbc_addresses table.
type noAddresses struct{}

func (noAddresses) Run(context.Context, time.Duration) {}
func (noAddresses) Kick()                              {}

// backendErrors counts the failures of one backend in the metrics; a
// request given up by its caller is not one.
type backendErrors struct {
	m       *metrics.Metrics
	backend string
}

func (c backendErrors) count(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		c.m.BackendError(c.backend)
	}
	return err
}

// countingStore counts the failures of the Redis registration store.
type countingStore struct {
	store.Registrations
	errs backendErrors
}

func (s countingStore) Binding(ctx context.Context, aor string) (*registrar.Binding, error) {
	b, err := s.Registrations.Binding(ctx, aor)
	return b, s.errs.count(err)
}

var _ registrar.CombinedStore = (*redisstore.Store)(nil)

// Lookup passes registrar.CombinedStore through: countingStore wraps a
// redisstore.Store, which offers it.
func (s countingStore) Lookup(ctx context.Context, l registrar.Lookup) (registrar.Looked, error) {
	cs, ok := s.Registrations.(registrar.CombinedStore)
	if !ok {
		// An error leaves the ban to the guard's read and the claim to challenge.
		return registrar.Looked{}, errors.New("app: the registration store offers no combined lookup")
	}
	res, err := cs.Lookup(ctx, l)
	return res, s.errs.count(err)
}

func (s countingStore) Bind(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration) error {
	return s.errs.count(s.Registrations.Bind(ctx, aor, b, ttl))
}

// BindWith passes registrar.EventStore through. A store without it binds
// plainly and the event is lost (counted): not the case of redisstore.
func (s countingStore) BindWith(ctx context.Context, aor string, b registrar.Binding, ttl time.Duration, ev *events.Inline) error {
	es, ok := s.Registrations.(registrar.EventStore)
	if !ok {
		if ev != nil {
			ev.Err = events.ErrNotCarried
		}
		return s.Bind(ctx, aor, b, ttl)
	}
	return s.errs.count(es.BindWith(ctx, aor, b, ttl, ev))
}

// UnbindWith passes registrar.EventStore through, as BindWith.
func (s countingStore) UnbindWith(ctx context.Context, aor string, ev *events.Inline) error {
	es, ok := s.Registrations.(registrar.EventStore)
	if !ok {
		if ev != nil {
			ev.Err = events.ErrNotCarried
		}
		return s.Unbind(ctx, aor)
	}
	return s.errs.count(es.UnbindWith(ctx, aor, ev))
}

func (s countingStore) Unbind(ctx context.Context, aor string) error {
	return s.errs.count(s.Registrations.Unbind(ctx, aor))
}

func (s countingStore) CountRealm(ctx context.Context, realm string) (int, error) {
	n, err := s.Registrations.CountRealm(ctx, realm)
	return n, s.errs.count(err)
}

func (s countingStore) Count(ctx context.Context) (int, error) {
	n, err := s.Registrations.Count(ctx)
	return n, s.errs.count(err)
}

// countingDirectory counts the failures of the MySQL directory.
type countingDirectory struct {
	registrar.Directory
	errs backendErrors
}

func (d countingDirectory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	a, err := d.Directory.AccountByRealm(ctx, realm)
	return a, d.errs.count(err)
}

func (d countingDirectory) Capacities(ctx context.Context, accountSID string) (registrar.Capacities, error) {
	c, err := d.Directory.Capacities(ctx, accountSID)
	return c, d.errs.count(err)
}

func (d countingDirectory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	c, err := d.Directory.Client(ctx, accountSID, username)
	return c, d.errs.count(err)
}
