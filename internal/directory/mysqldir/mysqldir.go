// Package mysqldir reads (and, for the features that write, updates) the
// jambonz MySQL schema: accounts, webhooks, capacities and clients.
package mysqldir

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Open opens a pool for c and checks nothing yet (the first query connects).
func Open(c config.MySQL) (*sql.DB, error) { return open(c, nil) }

// OpenWithBreaker opens a pool whose new connections go through a circuit
// breaker (internal/breaker): while MySQL is down none is dialled and calls
// fail at once with breaker.ErrUnavailable; a failed dial opens it. The
// breaker probes with a ping every probeEvery once its Run runs.
func OpenWithBreaker(c config.MySQL, probeEvery time.Duration, log *slog.Logger) (*sql.DB, *breaker.Breaker, error) {
	var db *sql.DB
	b := breaker.New("mysql", func(ctx context.Context) error { return db.PingContext(ctx) }, breaker.Options{
		Interval: probeEvery,
		Timeout:  c.DialTimeout + c.Timeout,
		Outage:   Outage,
		Log:      log,
	})
	db, err := open(c, b)
	if err != nil {
		return nil, nil, err
	}
	return db, b, nil
}

func open(c config.MySQL, b *breaker.Breaker) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = c.Host + ":" + strconv.Itoa(c.Port)
	mc.User = c.User
	mc.Passwd = c.Password
	mc.DBName = c.Database
	mc.ParseTime = true
	mc.Timeout = durationOr(c.DialTimeout, time.Second)
	mc.ReadTimeout = durationOr(c.Timeout, 3*time.Second)
	mc.WriteTimeout = mc.ReadTimeout
	mc.AllowNativePasswords = true
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	if b != nil {
		conn = gatedConnector{Connector: conn, b: b}
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(c.ConnectionLimit)
	db.SetMaxIdleConns(c.ConnectionLimit)
	db.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// gatedConnector dials only while the breaker allows it (or for its probe).
type gatedConnector struct {
	driver.Connector
	b *breaker.Breaker
}

func (g gatedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if !breaker.IsProbe(ctx) {
		if err := g.b.Allow(); err != nil {
			return nil, err
		}
	}
	c, err := g.Connector.Connect(ctx)
	if err != nil {
		return nil, g.b.Observe(ctx, err)
	}
	return c, nil
}

// Outage tells a lost or unreachable server (refused, reset, timed out,
// invalid connection) from an answer (no rows, an SQL error): only the
// first opens the breaker.
func Outage(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

const (
	qAccountByRealm = `SELECT a.account_sid, a.service_provider_sid, a.sip_realm, a.is_active,
  a.webhook_secret, a.device_to_call_ratio, w.url, w.method, w.username, w.password
FROM accounts a LEFT JOIN webhooks w ON a.registration_hook_sid = w.webhook_sid
WHERE a.sip_realm = ?`

	qCapacities = `SELECT p.category, SUM(ap.quantity)
FROM account_products ap
JOIN account_subscriptions s ON ap.account_subscription_sid = s.account_subscription_sid
JOIN products p ON p.product_sid = ap.product_sid
WHERE s.account_sid = ? AND s.pending = 0
  AND (s.effective_end_date IS NULL OR s.effective_end_date > NOW())
GROUP BY p.category`

	qClient = `SELECT username, password, is_active, allow_direct_app_calling,
  allow_direct_queue_calling, allow_direct_user_calling
FROM clients WHERE account_sid = ? AND username = ? LIMIT 1`
)

// Directory implements registrar.Directory on MySQL.
type Directory struct {
	read  *sql.DB
	write *sql.DB
	// b, when set, fails lookups at once while MySQL is down and is told
	// of every lookup's outcome.
	b *breaker.Breaker

	accountByRealm *sql.Stmt
	capacities     *sql.Stmt
	client         *sql.Stmt
}

// New prepares the statements. write may be nil (updates use read).
func New(ctx context.Context, read, write *sql.DB) (*Directory, error) {
	if write == nil {
		write = read
	}
	d := &Directory{read: read, write: write}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&d.accountByRealm, qAccountByRealm},
		{&d.capacities, qCapacities},
		{&d.client, qClient},
	} {
		st, err := read.PrepareContext(ctx, p.q)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("mysql: preparing statement: %w", err)
		}
		*p.dst = st
	}
	return d, nil
}

// WithBreaker puts the lookups behind b (the read pool's breaker, see
// OpenWithBreaker) and returns d.
func (d *Directory) WithBreaker(b *breaker.Breaker) *Directory {
	d.b = b
	return d
}

// Close releases the prepared statements (not the pools).
func (d *Directory) Close() {
	for _, st := range []*sql.Stmt{d.accountByRealm, d.capacities, d.client} {
		if st != nil {
			st.Close()
		}
	}
}

// Read returns the read pool (for other components' queries).
func (d *Directory) Read() *sql.DB { return d.read }

// Write returns the write pool (the read pool when none is configured).
func (d *Directory) Write() *sql.DB { return d.write }

// AccountByRealm implements registrar.Directory.
func (d *Directory) AccountByRealm(ctx context.Context, realm string) (*registrar.Account, error) {
	var (
		a                       registrar.Account
		spSID, secret           sql.NullString
		url, method, user, pass sql.NullString
		active                  bool
		ratio                   sql.NullInt64
	)
	if err := d.b.Allow(); err != nil {
		return nil, fmt.Errorf("mysql: account by realm %q: %w", realm, err)
	}
	err := d.accountByRealm.QueryRowContext(ctx, realm).Scan(&a.SID, &spSID, &a.Realm, &active,
		&secret, &ratio, &url, &method, &user, &pass)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: account by realm %q: %w", realm, d.b.Observe(ctx, err))
	}
	a.ServiceProviderSID = spSID.String
	a.Active = active
	a.WebhookSecret = secret.String
	a.DeviceToCallRatio = int(ratio.Int64)
	if url.Valid && url.String != "" {
		a.Hook = &registrar.Webhook{URL: url.String, Method: method.String, Username: user.String, Password: pass.String}
	}
	return &a, nil
}

// Capacities implements registrar.Directory.
func (d *Directory) Capacities(ctx context.Context, accountSID string) (registrar.Capacities, error) {
	var c registrar.Capacities
	if err := d.b.Allow(); err != nil {
		return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, err)
	}
	rows, err := d.capacities.QueryContext(ctx, accountSID)
	if err != nil {
		return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, d.b.Observe(ctx, err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			category string
			quantity sql.NullInt64
		)
		if err := rows.Scan(&category, &quantity); err != nil {
			return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, err)
		}
		switch category {
		case "voice_call_session":
			c.VoiceCallSessions = int(quantity.Int64)
		case "device":
			c.Devices = int(quantity.Int64)
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, d.b.Observe(ctx, err))
	}
	return c, nil
}

// Client implements registrar.Directory.
func (d *Directory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	var (
		c          registrar.Client
		name, pass sql.NullString
	)
	if err := d.b.Allow(); err != nil {
		return nil, fmt.Errorf("mysql: client %q of %s: %w", username, accountSID, err)
	}
	err := d.client.QueryRowContext(ctx, accountSID, username).Scan(&name, &pass, &c.Active,
		&c.AllowDirectAppCalling, &c.AllowDirectQueueCalling, &c.AllowDirectUserCalling)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: client %q of %s: %w", username, accountSID, d.b.Observe(ctx, err))
	}
	c.Username = name.String
	c.Password = pass.String
	return &c, nil
}
