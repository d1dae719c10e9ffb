// Package pinger sends OPTIONS to carrier gateways that ask for it and keeps
// the gateway blacklist in Redis that sbc-outbound reads
// (docs/contract.md#redis, #mysql): a gateway not answering 200 is blacklisted for
// OPTIONS_PING_TTL, a later 200 lifts it, answers listed in
// OPTIONS_RESPONSE_REMOVE turn the pings off.
package pinger

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Gateway is one sip_gateways row to ping, with its carrier.
type Gateway struct {
	GatewaySID         string
	CarrierSID         string
	CarrierName        string
	AccountSID         string
	ServiceProviderSID string
	Host               string
	Port               int // 0 when NULL
	Protocol           string
	UseSIPS            bool
}

// Gateways is the directory side the pinger needs (MySQL, or the config
// file in standalone mode).
type Gateways interface {
	// PingTargets lists gateways with send_options_ping, outbound and
	// is_active.
	PingTargets(ctx context.Context) ([]Gateway, error)
	// DisableOptionsPing sets sip_gateways.send_options_ping = 0.
	DisableOptionsPing(ctx context.Context, gatewaySID string) error
}

// Blacklist is the key-value store holding blacklist-sip-gateway:<sid>
// (redisstore.KV, or memstore.Store in standalone mode).
type Blacklist interface {
	// SetNX stores value with ttl only when key is absent.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	// Del removes keys.
	Del(ctx context.Context, keys ...string) (int, error)
}

// Options tune the pinger.
type Options struct {
	Every  time.Duration // SEND_OPTIONS_PING_INTERVAL
	TTL    time.Duration // OPTIONS_PING_TTL
	Remove []int         // OPTIONS_RESPONSE_REMOVE
	// Timeout bounds one OPTIONS transaction (0: 32 s).
	Timeout time.Duration
	// Concurrency bounds OPTIONS in flight (0: 64).
	Concurrency int
	// FromHost is the host of the From URI (this SBC's address).
	FromHost  string
	UserAgent string
}

// Pinger pings gateways every Options.Every.
type Pinger struct {
	gws    Gateways
	kv     Blacklist
	client sipfront.Client
	alert  alerts.Alerter
	opts   Options
	log    *slog.Logger
}

// New builds a Pinger.
func New(gws Gateways, kv Blacklist, client sipfront.Client, alert alerts.Alerter, opts Options, log *slog.Logger) *Pinger {
	if opts.Every <= 0 {
		opts.Every = time.Minute
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 32 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.FromHost == "" {
		opts.FromHost = "localhost"
	}
	if alert == nil {
		alert = alerts.Discard{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Pinger{gws: gws, kv: kv, client: client, alert: alert, opts: opts, log: log.With("component", "pinger")}
}

// BlacklistKey is the key sbc-outbound checks for a gateway.
func BlacklistKey(gatewaySID string) string { return "blacklist-sip-gateway:" + gatewaySID }

// Run pings every Every until ctx ends (the first round after one period,
// like the original).
func (p *Pinger) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.Round(ctx)
		}
	}
}

// Round pings every gateway once and returns when all have answered or
// timed out.
func (p *Pinger) Round(ctx context.Context) {
	gws, err := p.gws.PingTargets(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("pinger: reading gateways failed", "err", err)
		}
		return
	}
	p.log.Debug("pinger: sending OPTIONS", "gateways", len(gws))
	sem := make(chan struct{}, p.opts.Concurrency)
	var wg sync.WaitGroup
	for _, g := range gws {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.ping(ctx, g)
		}()
	}
	wg.Wait()
}

func (p *Pinger) ping(ctx context.Context, g Gateway) {
	req, out, err := p.request(g)
	if err != nil {
		p.log.Warn("pinger: bad gateway row", "gateway_sid", g.GatewaySID, "err", err)
		return
	}
	tctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	res, err := p.client.Do(tctx, out)
	if ctx.Err() != nil {
		return
	}
	target := g.Host
	if g.Port > 0 {
		target += ":" + strconv.Itoa(g.Port)
	}
	target += ";transport=" + g.Protocol
	if err == nil && res.StatusCode == 200 {
		if _, err := p.kv.Del(ctx, BlacklistKey(g.GatewaySID)); err != nil {
			p.log.Warn("pinger: lifting blacklist failed", "gateway_sid", g.GatewaySID, "err", err)
		}
		return
	}
	var msg string
	if err != nil {
		p.log.Info("pinger: OPTIONS failed", "uri", req.Recipient.String(), "err", err)
		msg = fmt.Sprintf("Options ping %s unsuccessfully, error: %v", target, err)
	} else {
		p.log.Info("pinger: OPTIONS answered", "uri", req.Recipient.String(), "status", res.StatusCode)
		msg = fmt.Sprintf("Options ping %s unsuccessfully, received: %d", target, res.StatusCode)
	}
	// SET NX: the alert is written once per blacklisting, not every round.
	added, rerr := p.kv.SetNX(ctx, BlacklistKey(g.GatewaySID), "1", p.opts.TTL)
	if rerr != nil {
		p.log.Warn("pinger: blacklisting failed", "gateway_sid", g.GatewaySID, "err", rerr)
	}
	if added {
		p.alert.Alert(ctx, alerts.Alert{AccountSID: g.AccountSID, ServiceProviderSID: g.ServiceProviderSID, Message: msg})
	}
	if err == nil && slices.Contains(p.opts.Remove, res.StatusCode) {
		if err := p.gws.DisableOptionsPing(ctx, g.GatewaySID); err != nil {
			p.log.Error("pinger: disabling OPTIONS ping failed", "gateway_sid", g.GatewaySID, "err", err)
			return
		}
		m := fmt.Sprintf("Disabling Options ping for %s in carrier %s(%s)", g.Host, g.CarrierName, g.CarrierSID)
		p.log.Info("pinger: "+m, "gateway_sid", g.GatewaySID, "status", res.StatusCode)
		p.alert.Alert(ctx, alerts.Alert{AccountSID: g.AccountSID, ServiceProviderSID: g.ServiceProviderSID, Message: m})
	}
}

// request builds the OPTIONS for g: Request-URI sip:host[:port] (sips
// without port for TLS with use_sips_scheme), sent to ip:port for IP
// literals and to the bare name otherwise.
func (p *Pinger) request(g Gateway) (*sip.Request, sipfront.OutboundRequest, error) {
	transport := strings.ToLower(g.Protocol)
	if i := strings.IndexByte(transport, '/'); i >= 0 {
		transport = transport[:i]
	}
	if transport == "" {
		transport = "udp"
	}
	sips := transport == "tls" && g.UseSIPS
	scheme := "sip"
	hostport := g.Host
	if sips {
		scheme = "sips"
	} else if g.Port > 0 {
		hostport = net.JoinHostPort(g.Host, strconv.Itoa(g.Port))
	}
	var ruri sip.Uri
	if err := sip.ParseUri(scheme+":"+hostport, &ruri); err != nil {
		return nil, sipfront.OutboundRequest{}, fmt.Errorf("uri %s:%s: %w", scheme, hostport, err)
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "options", Host: p.opts.FromHost}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: ruri, Params: sip.NewParams()}
	callID := sip.CallIDHeader(sip.GenerateTagN(32))
	cseq := &sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS}
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(cseq)
	req.AppendHeader(&maxFwd)
	if p.opts.UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", p.opts.UserAgent))
	}
	req.SetBody(nil)
	dest := g.Host
	if net.ParseIP(g.Host) != nil && g.Port > 0 {
		dest = net.JoinHostPort(g.Host, strconv.Itoa(g.Port))
	}
	return req, sipfront.OutboundRequest{Msg: req, Destination: dest, Transport: transport}, nil
}
