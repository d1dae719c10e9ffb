package filedir

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/pinger"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/regbot"
)

// Carriers serves the config file's voip_carriers and sip_gateways to
// outbound registration (regbot) and gateway pings (pinger), as
// mysqldir.Carriers does from MySQL. The file is never rewritten: the
// updates those components make (register_status, disabling a carrier's
// registration, turning a gateway's pings off) are kept in memory for the
// life of the process and logged, so a restart starts from the file again.
type Carriers struct {
	dir *Directory
	log *slog.Logger

	mu          sync.Mutex
	status      map[string]string // voip_carrier_sid -> register_status JSON
	noRegister  map[string]bool   // voip_carrier_sid -> requires_register = 0
	inactive    map[string]bool   // voip_carrier_sid -> is_active = 0
	pingStopped map[string]bool   // sip_gateway_sid -> send_options_ping = 0
}

var (
	_ regbot.Carriers = (*Carriers)(nil)
	_ pinger.Gateways = (*Carriers)(nil)
)

// NewCarriers returns the carriers of d.
func NewCarriers(d *Directory, log *slog.Logger) *Carriers {
	if log == nil {
		log = slog.Default()
	}
	return &Carriers{
		dir: d, log: log.With("component", "filedir"),
		status: map[string]string{}, noRegister: map[string]bool{},
		inactive: map[string]bool{}, pingStopped: map[string]bool{},
	}
}

// accountOf returns the account row of a carrier's account_sid.
func (c *Carriers) accountOf(sid string) (realm string, active, ok bool) {
	for _, a := range c.dir.accounts {
		if a.SID == sid {
			return a.Realm, a.Active, true
		}
	}
	return "", false, false
}

// RegisterTargets implements regbot.Carriers with the query of MySQL:
// carriers with requires_register and is_active whose account is none or
// active, and their outbound active gateways, in file order.
func (c *Carriers) RegisterTargets(context.Context) ([]regbot.Target, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []regbot.Target
	for _, v := range c.dir.carriers {
		if !v.RequiresRegister || !v.IsActive || c.noRegister[v.VoipCarrierSID] || c.inactive[v.VoipCarrierSID] {
			continue
		}
		realm := ""
		if v.AccountSID != "" {
			r, active, ok := c.accountOf(v.AccountSID)
			if !ok || !active {
				continue
			}
			realm = r
		}
		for _, g := range v.Gateways {
			if !g.Outbound || !g.IsActive {
				continue
			}
			out = append(out, regbot.Target{
				CarrierSID: v.VoipCarrierSID, CarrierName: v.Name, AccountSID: v.AccountSID,
				ServiceProviderSID: v.ServiceProviderSID, AccountRealm: realm, TrunkType: v.TrunkType,
				GatewaySID: g.SIPGatewaySID, Host: g.IPv4, Port: g.Port, Protocol: g.Protocol,
				UseSIPS: g.UseSipsScheme, Username: v.RegisterUsername, Password: v.RegisterPassword,
				Realm: v.RegisterSIPRealm, FromUser: v.RegisterFromUser, FromDomain: v.RegisterFromDomain,
				PublicIPInContact: v.RegisterPublicIPInContact, OutboundProxy: v.OutboundSIPProxy,
				AllSBCs: v.RegisterFromAllSBCs,
			})
		}
	}
	return out, nil
}

// UpdateRegisterStatus implements regbot.Carriers: kept in memory.
func (c *Carriers) UpdateRegisterStatus(_ context.Context, carrierSID, status string) error {
	c.mu.Lock()
	c.status[carrierSID] = status
	c.mu.Unlock()
	c.log.Debug("filedir: register_status (in memory)", "carrier_sid", carrierSID, "register_status", status)
	return nil
}

// RegisterStatus returns the last register_status written for a carrier,
// "" when none.
func (c *Carriers) RegisterStatus(carrierSID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[carrierSID]
}

// DisableRegistration implements regbot.Carriers: the carrier stops
// registering until the process restarts (the file is not changed).
func (c *Carriers) DisableRegistration(_ context.Context, carrierSID string, regTrunk bool) error {
	c.mu.Lock()
	column := "requires_register"
	if regTrunk {
		c.inactive[carrierSID] = true
		column = "is_active"
	} else {
		c.noRegister[carrierSID] = true
	}
	c.mu.Unlock()
	c.log.Warn("filedir: carrier registration disabled until restart (the config file is not changed)",
		"carrier_sid", carrierSID, "column", column)
	return nil
}

// SIPDomain implements regbot.Carriers: the file's top-level
// sip_domain_name (system_information in MySQL).
func (c *Carriers) SIPDomain(context.Context) (string, error) { return c.dir.sipDomain, nil }

// PingTargets implements pinger.Gateways: gateways with send_options_ping,
// outbound and is_active, as the MySQL query (the carrier's own state is
// not consulted there either).
func (c *Carriers) PingTargets(context.Context) ([]pinger.Gateway, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []pinger.Gateway
	for _, v := range c.dir.carriers {
		for _, g := range v.Gateways {
			if !g.SendOptionsPing || !g.Outbound || !g.IsActive || c.pingStopped[g.SIPGatewaySID] {
				continue
			}
			out = append(out, pinger.Gateway{
				GatewaySID: g.SIPGatewaySID, CarrierSID: v.VoipCarrierSID, CarrierName: v.Name,
				AccountSID: v.AccountSID, ServiceProviderSID: v.ServiceProviderSID,
				Host: g.IPv4, Port: g.Port, Protocol: g.Protocol, UseSIPS: g.UseSipsScheme,
			})
		}
	}
	return out, nil
}

// DisableOptionsPing implements pinger.Gateways: pings to the gateway stop
// until the process restarts.
func (c *Carriers) DisableOptionsPing(_ context.Context, gatewaySID string) error {
	c.mu.Lock()
	c.pingStopped[gatewaySID] = true
	c.mu.Unlock()
	c.log.Warn("filedir: OPTIONS pings disabled until restart (the config file is not changed)", "gateway_sid", gatewaySID)
	return nil
}
