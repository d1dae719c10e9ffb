package mysqldir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
)

// Carriers reads and updates voip_carriers and sip_gateways for outbound
// registration (regbot) and gateway OPTIONS pings (pinger).
type Carriers struct {
	read  *sql.DB
	write *sql.DB
}

// NewCarriers uses read for queries and write (read when nil) for updates.
func NewCarriers(read, write *sql.DB) *Carriers {
	if write == nil {
		write = read
	}
	return &Carriers{read: read, write: write}
}

var (
	_ regbot.Carriers = (*Carriers)(nil)
	_ pinger.Gateways = (*Carriers)(nil)
)

const qRegisterTargets = `SELECT vc.voip_carrier_sid, vc.name, vc.account_sid, vc.service_provider_sid,
  a.sip_realm, vc.trunk_type, gw.sip_gateway_sid, gw.ipv4, gw.port, gw.protocol, gw.use_sips_scheme,
  vc.register_username, vc.register_password, vc.register_sip_realm, vc.register_from_user,
  vc.register_from_domain, vc.register_public_ip_in_contact, vc.outbound_sip_proxy
FROM voip_carriers vc
JOIN sip_gateways gw ON gw.voip_carrier_sid = vc.voip_carrier_sid
LEFT JOIN accounts a ON a.account_sid = vc.account_sid
WHERE vc.requires_register = 1 AND vc.is_active = 1 AND gw.outbound = 1 AND gw.is_active = 1
  AND (vc.account_sid IS NULL OR a.is_active = 1)
ORDER BY vc.created_at, vc.voip_carrier_sid, gw.sip_gateway_sid`

// RegisterTargets implements regbot.Carriers.
func (c *Carriers) RegisterTargets(ctx context.Context) ([]regbot.Target, error) {
	rows, err := c.read.QueryContext(ctx, qRegisterTargets)
	if err != nil {
		return nil, fmt.Errorf("mysql: carriers requiring registration: %w", err)
	}
	defer rows.Close()
	var out []regbot.Target
	for rows.Next() {
		var (
			t                                       regbot.Target
			account, sp, realm, trunk, proto        sql.NullString
			user, pass, regRealm, fromUser, fromDom sql.NullString
			proxy                                   sql.NullString
			port                                    sql.NullInt64
		)
		if err := rows.Scan(&t.CarrierSID, &t.CarrierName, &account, &sp, &realm, &trunk,
			&t.GatewaySID, &t.Host, &port, &proto, &t.UseSIPS, &user, &pass, &regRealm,
			&fromUser, &fromDom, &t.PublicIPInContact, &proxy); err != nil {
			return nil, fmt.Errorf("mysql: carriers requiring registration: %w", err)
		}
		t.AccountSID, t.ServiceProviderSID, t.AccountRealm = account.String, sp.String, realm.String
		t.TrunkType, t.Protocol, t.Port = trunk.String, proto.String, int(port.Int64)
		t.Username, t.Password, t.Realm = user.String, pass.String, regRealm.String
		t.FromUser, t.FromDomain, t.OutboundProxy = fromUser.String, fromDom.String, proxy.String
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: carriers requiring registration: %w", err)
	}
	return out, nil
}

// UpdateRegisterStatus implements regbot.Carriers.
func (c *Carriers) UpdateRegisterStatus(ctx context.Context, carrierSID, status string) error {
	if _, err := c.write.ExecContext(ctx, `UPDATE voip_carriers SET register_status = ? WHERE voip_carrier_sid = ?`, status, carrierSID); err != nil {
		return fmt.Errorf("mysql: register_status of %s: %w", carrierSID, err)
	}
	return nil
}

// DisableRegistration implements regbot.Carriers.
func (c *Carriers) DisableRegistration(ctx context.Context, carrierSID string, regTrunk bool) error {
	q := `UPDATE voip_carriers SET requires_register = 0 WHERE voip_carrier_sid = ?`
	if regTrunk {
		q = `UPDATE voip_carriers SET is_active = 0 WHERE voip_carrier_sid = ?`
	}
	if _, err := c.write.ExecContext(ctx, q, carrierSID); err != nil {
		return fmt.Errorf("mysql: disabling registration of %s: %w", carrierSID, err)
	}
	return nil
}

// SIPDomain implements regbot.Carriers.
func (c *Carriers) SIPDomain(ctx context.Context) (string, error) {
	var d sql.NullString
	err := c.read.QueryRowContext(ctx, `SELECT sip_domain_name FROM system_information LIMIT 1`).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("mysql: system_information: %w", err)
	}
	return d.String, nil
}

const qPingTargets = `SELECT gw.sip_gateway_sid, gw.voip_carrier_sid, vc.name, vc.account_sid,
  vc.service_provider_sid, gw.ipv4, gw.port, gw.protocol, gw.use_sips_scheme
FROM sip_gateways gw JOIN voip_carriers vc ON vc.voip_carrier_sid = gw.voip_carrier_sid
WHERE gw.send_options_ping = 1 AND gw.outbound = 1 AND gw.is_active = 1`

// PingTargets implements pinger.Gateways.
func (c *Carriers) PingTargets(ctx context.Context) ([]pinger.Gateway, error) {
	rows, err := c.read.QueryContext(ctx, qPingTargets)
	if err != nil {
		return nil, fmt.Errorf("mysql: gateways to ping: %w", err)
	}
	defer rows.Close()
	var out []pinger.Gateway
	for rows.Next() {
		var (
			g                  pinger.Gateway
			account, sp, proto sql.NullString
			port               sql.NullInt64
		)
		if err := rows.Scan(&g.GatewaySID, &g.CarrierSID, &g.CarrierName, &account, &sp, &g.Host, &port, &proto, &g.UseSIPS); err != nil {
			return nil, fmt.Errorf("mysql: gateways to ping: %w", err)
		}
		g.AccountSID, g.ServiceProviderSID, g.Port, g.Protocol = account.String, sp.String, int(port.Int64), proto.String
		if g.Protocol == "" {
			g.Protocol = "udp"
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: gateways to ping: %w", err)
	}
	return out, nil
}

// DisableOptionsPing implements pinger.Gateways.
func (c *Carriers) DisableOptionsPing(ctx context.Context, gatewaySID string) error {
	if _, err := c.write.ExecContext(ctx, `UPDATE sip_gateways SET send_options_ping = 0 WHERE sip_gateway_sid = ?`, gatewaySID); err != nil {
		return fmt.Errorf("mysql: disabling OPTIONS ping of %s: %w", gatewaySID, err)
	}
	return nil
}
