package sbcaddr

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

func TestPublic_DerivesRowsFromListenAddresses(t *testing.T) {
	ifaces := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3"),
		netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("fe80::1"),
	}
	listen := func(s string) []config.Listen {
		l, err := config.ParseListen(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := func(ip string, port, tls, wss int) Address {
		return Address{IP: netip.MustParseAddr(ip), Port: port, TLSPort: tls, WSSPort: wss}
	}
	for _, tc := range []struct {
		name   string
		listen string
		public string
		want   []Address
	}{
		{"public host", "udp:203.0.113.5:5060,tcp:203.0.113.5:5060,tls:203.0.113.5:5061,wss:203.0.113.5:8443", "",
			[]Address{a("203.0.113.5", 5060, 5061, 8443)}},
		{"private and loopback hosts are not announced", "udp:10.0.0.1:5060,tcp:127.0.0.1:5060,udp:192.168.0.4:5060,udp:172.16.3.3:5060", "", []Address{}},
		{"wildcard uses the public interface addresses", "udp:0.0.0.0:5080", "", []Address{a("198.51.100.7", 5080, 0, 0)}},
		{"SIP_PUBLIC_ADDRESS overrides a private bind (NAT)", "udp:10.0.0.1:5060,tls:10.0.0.1:5061", "203.0.113.9",
			[]Address{a("203.0.113.9", 5060, 5061, 0)}},
		{"only tls: port defaults to 5060", "tls:203.0.113.5:5061", "", []Address{a("203.0.113.5", 5060, 5061, 0)}},
		{"two public addresses", "udp:203.0.113.6:5060,udp:203.0.113.5:5062", "",
			[]Address{a("203.0.113.5", 5062, 0, 0), a("203.0.113.6", 5060, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Public(listen(tc.listen), tc.public, ifaces)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

type row struct {
	IP       string
	Port     int
	TLS, WSS sql.NullInt64
	Age      int64 // seconds since last_updated
}

func rows(t *testing.T, db *sql.DB, ip string) []row {
	t.Helper()
	rs, err := db.Query(`SELECT ipv4, port, tls_port, wss_port, TIMESTAMPDIFF(SECOND, last_updated, NOW())
		FROM sbc_addresses WHERE ipv4 = ? ORDER BY port`, ip)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.IP, &r.Port, &r.TLS, &r.WSS, &r.Age); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestKeeper_UpsertsAndDeletesDeadSBCs(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const mine, dead, alive = "203.0.113.50", "203.0.113.51", "203.0.113.52"
	cleanup := func() { db.Exec(`DELETE FROM sbc_addresses WHERE ipv4 IN (?, ?, ?)`, mine, dead, alive) }
	cleanup()
	t.Cleanup(cleanup)
	// Another SBC that stopped 2 hours ago, and one refreshed a minute ago.
	db.Exec(`INSERT INTO sbc_addresses (sbc_address_sid, ipv4, port, last_updated) VALUES
		('5bc00000-0000-4000-8000-000000000051', ?, 5060, DATE_SUB(NOW(), INTERVAL 2 HOUR)),
		('5bc00000-0000-4000-8000-000000000052', ?, 5060, DATE_SUB(NOW(), INTERVAL 1 MINUTE))`, dead, alive)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k := New(db, []Address{{IP: netip.MustParseAddr(mine), Port: 5060, TLSPort: 5061, WSSPort: 8443}}, time.Hour, log)
	for i := 0; i < 3; i++ { // refreshing never duplicates the row
		if err := k.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := rows(t, db, mine)
	if len(got) != 1 || got[0].Port != 5060 || got[0].TLS.Int64 != 5061 || got[0].WSS.Int64 != 8443 || got[0].Age > 5 {
		t.Errorf("own rows = %+v, want one fresh row 5060/5061/8443", got)
	}
	if r := rows(t, db, dead); len(r) != 0 {
		t.Errorf("dead SBC kept: %+v", r)
	}
	if r := rows(t, db, alive); len(r) != 1 {
		t.Errorf("live SBC removed: %+v", r)
	}

	// An old row of ours is refreshed, not duplicated, and TLS dropped.
	db.Exec(`UPDATE sbc_addresses SET last_updated = DATE_SUB(NOW(), INTERVAL 50 MINUTE) WHERE ipv4 = ?`, mine)
	k = New(db, []Address{{IP: netip.MustParseAddr(mine), Port: 5060}}, time.Hour, log)
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got = rows(t, db, mine)
	if len(got) != 1 || got[0].TLS.Valid || got[0].WSS.Valid || got[0].Age > 5 {
		t.Errorf("refreshed rows = %+v", got)
	}
}

func TestPublicOnly_KeepsPublicAddressesMergedAndSorted(t *testing.T) {
	a := func(ip string, port, tls, wss int) Address {
		return Address{IP: netip.MustParseAddr(ip), Port: port, TLSPort: tls, WSSPort: wss}
	}
	for _, tc := range []struct {
		name string
		in   []Address
		want []Address
	}{
		{"nothing", nil, []Address{}},
		{"private, loopback and IPv6 dropped",
			[]Address{a("10.0.0.5", 5060, 0, 0), a("127.0.0.1", 5060, 0, 0), a("192.168.1.1", 5060, 0, 0), a("2001:db8::1", 5060, 0, 0)}, []Address{}},
		{"one public address with its ports", []Address{a("203.0.113.10", 5060, 5061, 8443), a("10.0.0.5", 5060, 0, 0)},
			[]Address{a("203.0.113.10", 5060, 5061, 8443)}},
		{"entries of one IP merged, first SIP port kept", []Address{a("203.0.113.10", 5080, 0, 0), a("203.0.113.10", 5090, 5061, 0), a("203.0.113.10", 0, 0, 8443)},
			[]Address{a("203.0.113.10", 5080, 5061, 8443)}},
		{"no SIP port: 5060", []Address{a("203.0.113.10", 0, 5061, 0)}, []Address{a("203.0.113.10", 5060, 5061, 0)}},
		{"sorted by IP", []Address{a("203.0.113.12", 5060, 0, 0), a("198.51.100.1", 5060, 0, 0)},
			[]Address{a("198.51.100.1", 5060, 0, 0), a("203.0.113.12", 5060, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PublicOnly(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// A keeper built on a source follows it: addresses appearing later (the
// drachtio front after connecting) or changing (after a reconnect) are
// upserted at the next refresh, and Kick makes that refresh happen now.
func TestKeeper_FollowsItsSourceAndRefreshesOnKick(t *testing.T) {
	my := testenv.MySQL(t)
	db, err := sql.Open("mysql", my.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const first, second = "203.0.113.60", "203.0.113.61"
	cleanup := func() { db.Exec(`DELETE FROM sbc_addresses WHERE ipv4 IN (?, ?)`, first, second) }
	cleanup()
	t.Cleanup(cleanup)

	addrs := make(chan []Address, 1)
	addrs <- nil
	current := func() []Address { a := <-addrs; addrs <- a; return a }
	set := func(a []Address) { <-addrs; addrs <- a }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k := NewFunc(db, current, time.Hour, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx, time.Hour); close(done) }() // the ticker never fires here
	t.Cleanup(func() { cancel(); <-done })

	waitRows := func(ip string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(rows(t, db, ip)) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("no row for %s", ip)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	set([]Address{{IP: netip.MustParseAddr(first), Port: 5060}})
	k.Kick()
	waitRows(first)
	set([]Address{{IP: netip.MustParseAddr(second), Port: 5070, WSSPort: 8443}})
	k.Kick()
	waitRows(second)
	if r := rows(t, db, second); r[0].Port != 5070 || r[0].WSS.Int64 != 8443 {
		t.Errorf("row = %+v, want port 5070, wss 8443", r[0])
	}
}
