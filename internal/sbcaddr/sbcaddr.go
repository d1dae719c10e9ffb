// Package sbcaddr keeps this SBC's public SIP addresses in the
// `sbc_addresses` table (docs/contract.md#mysql): the portal and api-server list them
// (DNS records for SIP realms, carrier whitelisting). Each address is
// upserted at start and every SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND;
// rows of SBCs that stopped refreshing for DEAD_SBC_IN_SECOND are deleted.
package sbcaddr

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
)

// Address is one row: the SIP ports of one public IPv4 address.
type Address struct {
	IP      netip.Addr
	Port    int // udp/tcp; 5060 when only tls/wss listen
	TLSPort int // 0: none
	WSSPort int // 0: none
}

// IsPublic reports whether ip may be announced: IPv4, not RFC 1918, not
// loopback, link-local, multicast or unspecified.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.Is4() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!ip.IsMulticast() && !ip.IsUnspecified()
}

// Public derives the public addresses from the listen list. publicIP
// (SIP_PUBLIC_ADDRESS) overrides the listen hosts, for NAT'ed hosts whose
// sockets are bound to a private address; sockets bound to 0.0.0.0 stand
// for every public address of ifaceAddrs.
func Public(listen []config.Listen, publicIP string, ifaceAddrs []netip.Addr) []Address {
	var override netip.Addr
	if a, err := netip.ParseAddr(publicIP); err == nil {
		override = a.Unmap()
	}
	var all []Address
	for _, l := range listen {
		host, err := netip.ParseAddr(l.Host)
		if err != nil {
			continue
		}
		var ips []netip.Addr
		switch {
		case override.IsValid():
			ips = []netip.Addr{override}
		case host.IsUnspecified():
			ips = ifaceAddrs
		default:
			ips = []netip.Addr{host.Unmap()}
		}
		for _, ip := range ips {
			a := Address{IP: ip}
			switch l.Transport {
			case "udp", "tcp":
				a.Port = l.Port
			case "tls":
				a.TLSPort = l.Port
			case "wss":
				a.WSSPort = l.Port
			default:
				continue
			}
			all = append(all, a)
		}
	}
	return PublicOnly(all)
}

// InterfaceAddrs returns the host's interface addresses.
func InterfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// Source returns the current public addresses; it is called at every
// refresh, so addresses that change while running (drachtio's hostports
// after a reconnect) are followed.
type Source func() []Address

// PublicOnly keeps the public addresses of addrs (IsPublic), merges entries
// of one IP, defaults the SIP port to 5060 and sorts by IP.
func PublicOnly(addrs []Address) []Address {
	byIP := map[netip.Addr]*Address{}
	for _, a := range addrs {
		ip := a.IP.Unmap()
		if !IsPublic(ip) {
			continue
		}
		m := byIP[ip]
		if m == nil {
			m = &Address{IP: ip}
			byIP[ip] = m
		}
		if m.Port == 0 {
			m.Port = a.Port
		}
		if a.TLSPort != 0 {
			m.TLSPort = a.TLSPort
		}
		if a.WSSPort != 0 {
			m.WSSPort = a.WSSPort
		}
	}
	out := make([]Address, 0, len(byIP))
	for _, a := range byIP {
		if a.Port == 0 {
			a.Port = 5060
		}
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// Keeper refreshes the rows of this SBC through the write pool.
type Keeper struct {
	db   *sql.DB
	src  Source
	dead time.Duration
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	logged string // the address set last logged
}

// New returns a keeper of addrs; rows older than dead are deleted.
func New(db *sql.DB, addrs []Address, dead time.Duration, log *slog.Logger) *Keeper {
	return NewFunc(db, func() []Address { return addrs }, dead, log)
}

// NewFunc returns a keeper of the addresses src returns at each refresh.
func NewFunc(db *sql.DB, src Source, dead time.Duration, log *slog.Logger) *Keeper {
	return &Keeper{db: db, src: src, dead: dead, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks Run for a refresh now (e.g. the addresses changed); it never blocks.
func (k *Keeper) Kick() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Refresh upserts every address and deletes dead rows.
func (k *Keeper) Refresh(ctx context.Context) error {
	addrs := k.src()
	k.logChange(addrs)
	for _, a := range addrs {
		if err := k.upsert(ctx, a); err != nil {
			return err
		}
	}
	res, err := k.db.ExecContext(ctx,
		`DELETE FROM sbc_addresses WHERE last_updated IS NULL OR last_updated < DATE_SUB(NOW(), INTERVAL ? SECOND)`,
		int64(k.dead/time.Second))
	if err != nil {
		return fmt.Errorf("sbcaddr: deleting dead rows: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		k.log.Info("sbcaddr: deleted addresses of dead SBCs", "rows", n)
	}
	return nil
}

// logChange logs the address set when it differs from the last one logged.
func (k *Keeper) logChange(addrs []Address) {
	cur := fmt.Sprint(addrs)
	k.mu.Lock()
	changed := cur != k.logged
	k.logged = cur
	k.mu.Unlock()
	if !changed {
		return
	}
	if len(addrs) == 0 {
		k.log.Warn("sbcaddr: no public SIP address (set SIP_PUBLIC_ADDRESS behind NAT, external-ip in drachtio); sbc_addresses is not updated")
		return
	}
	k.log.Info("sbcaddr: keeping sbc_addresses", "addresses", cur)
}

// upsert updates the rows of (ip, port) or inserts one. The schema has no
// unique key on (ipv4, port), so the SELECT ... FOR UPDATE serializes two
// instances refreshing the same address (it locks the index gap too).
func (k *Keeper) upsert(ctx context.Context, a Address) error {
	tx, err := k.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sbcaddr: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx,
		`SELECT sbc_address_sid FROM sbc_addresses WHERE ipv4 = ? AND port = ? FOR UPDATE`, a.IP.String(), a.Port)
	if err != nil {
		return fmt.Errorf("sbcaddr: select %s: %w", a.IP, err)
	}
	var sids []string
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			rows.Close()
			return fmt.Errorf("sbcaddr: scan: %w", err)
		}
		sids = append(sids, sid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sbcaddr: select %s: %w", a.IP, err)
	}
	tls, wss := nullPort(a.TLSPort), nullPort(a.WSSPort)
	if len(sids) == 0 {
		_, err = tx.ExecContext(ctx, `INSERT INTO sbc_addresses (sbc_address_sid, ipv4, port, tls_port, wss_port, last_updated)
			VALUES (?, ?, ?, ?, ?, NOW())`, uuid.NewString(), a.IP.String(), a.Port, tls, wss)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE sbc_addresses SET tls_port = ?, wss_port = ?, last_updated = NOW()
			WHERE ipv4 = ? AND port = ?`, tls, wss, a.IP.String(), a.Port)
	}
	if err != nil {
		return fmt.Errorf("sbcaddr: upsert %s:%d: %w", a.IP, a.Port, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sbcaddr: commit: %w", err)
	}
	return nil
}

func nullPort(p int) sql.NullInt64 { return sql.NullInt64{Int64: int64(p), Valid: p > 0} }

// Run refreshes at once, every interval and on Kick until ctx ends;
// failures are logged and retried at the next tick.
func (k *Keeper) Run(ctx context.Context, interval time.Duration) {
	k.log.Info("sbcaddr: refreshing sbc_addresses", "every", interval.String())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
			k.log.Error("sbcaddr: refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.kick:
		}
	}
}

func (a Address) String() string {
	return fmt.Sprintf("%s port=%d tls=%d wss=%d", a.IP, a.Port, a.TLSPort, a.WSSPort)
}
