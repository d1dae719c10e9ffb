// Package mysqldir reads (and, for the features that write, updates) the
// jambonz MySQL schema: accounts, webhooks, capacities and clients.
package mysqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Open opens a pool for c and checks nothing yet (the first query connects).
func Open(c config.MySQL) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = c.Host + ":" + strconv.Itoa(c.Port)
	mc.User = c.User
	mc.Passwd = c.Password
	mc.DBName = c.Database
	mc.ParseTime = true
	mc.Timeout = 3 * time.Second
	mc.ReadTimeout = 5 * time.Second
	mc.WriteTimeout = 5 * time.Second
	mc.AllowNativePasswords = true
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(c.ConnectionLimit)
	db.SetMaxIdleConns(c.ConnectionLimit)
	db.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
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
	err := d.accountByRealm.QueryRowContext(ctx, realm).Scan(&a.SID, &spSID, &a.Realm, &active,
		&secret, &ratio, &url, &method, &user, &pass)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: account by realm %q: %w", realm, err)
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
	rows, err := d.capacities.QueryContext(ctx, accountSID)
	if err != nil {
		return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, err)
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
		return c, fmt.Errorf("mysql: capacities of %s: %w", accountSID, err)
	}
	return c, nil
}

// Client implements registrar.Directory.
func (d *Directory) Client(ctx context.Context, accountSID, username string) (*registrar.Client, error) {
	var (
		c          registrar.Client
		name, pass sql.NullString
	)
	err := d.client.QueryRowContext(ctx, accountSID, username).Scan(&name, &pass, &c.Active,
		&c.AllowDirectAppCalling, &c.AllowDirectQueueCalling, &c.AllowDirectUserCalling)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: client %q of %s: %w", username, accountSID, err)
	}
	c.Username = name.String
	c.Password = pass.String
	return &c, nil
}
