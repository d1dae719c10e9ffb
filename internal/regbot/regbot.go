// Package regbot registers this SBC to the carriers that require it
// (docs/contract.md#outbound-registration): one leader per cluster does the work, one agent per
// unique (host, realm, username, password), agents restarted only when their
// row changes.
package regbot

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// Target is one outbound gateway of a carrier that requires registration,
// as read from the directory. It is comparable: an agent is restarted when its
// Target changes.
type Target struct {
	CarrierSID         string
	CarrierName        string
	AccountSID         string
	ServiceProviderSID string
	AccountRealm       string // accounts.sip_realm of the carrier's account
	TrunkType          string // static_ip, auth, reg

	GatewaySID string
	Host       string // sip_gateways.ipv4: IP or DNS name
	Port       int    // 0 when NULL
	Protocol   string // udp, tcp, tls, tls/srtp
	UseSIPS    bool

	Username          string
	Password          string // possibly encrypted (credcrypt format)
	Realm             string // register_sip_realm
	FromUser          string
	FromDomain        string
	PublicIPInContact bool
	OutboundProxy     string
}

// Carriers is the directory side regbot needs (MySQL, or the config file
// in standalone mode).
type Carriers interface {
	// RegisterTargets lists the outbound active gateways of active carriers
	// that require registration (account NULL or active).
	RegisterTargets(ctx context.Context) ([]Target, error)
	// UpdateRegisterStatus writes voip_carriers.register_status.
	UpdateRegisterStatus(ctx context.Context, carrierSID, status string) error
	// DisableRegistration sets requires_register = 0, or is_active = 0 for
	// reg trunks.
	DisableRegistration(ctx context.Context, carrierSID string, regTrunk bool) error
	// SIPDomain is system_information.sip_domain_name, "" when none.
	SIPDomain(ctx context.Context) (string, error)
}

// KV is what regbot keeps in the cluster's key-value store: the leader
// token (<cluster>:regbot-token) and the ephemeral gateways of reg trunks
// (eph-gw-ip:<ip>). redisstore.KV implements it over Redis, memstore.Store
// in process for standalone mode.
type KV interface {
	// SetNX stores value with ttl only when key is absent.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	// ExpireIfEqual sets key's ttl only while it holds value.
	ExpireIfEqual(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	// DelIfEqual deletes key only while it holds value.
	DelIfEqual(ctx context.Context, key, value string) (bool, error)
	// HSetTTL sets hash fields and the key's ttl in one step.
	HSetTTL(ctx context.Context, key string, fields map[string]string, ttl time.Duration) error
	// HDel removes hash fields.
	HDel(ctx context.Context, key string, fields ...string) error
}

// Decrypter decrypts stored carrier passwords (credcrypt.Cipher).
type Decrypter interface {
	Decrypt(v string) (string, error)
}

// Resolver resolves gateway names for ephemeral gateways (*net.Resolver).
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Deps are regbot's collaborators.
type Deps struct {
	Store    KV
	Carriers Carriers
	Client   sipfront.Client
	Alerter  alerts.Alerter
	// Cipher decrypts encrypted passwords; nil leaves them as stored.
	Cipher Decrypter
	// PublicAddress returns ip:port of this SBC for a transport (Contact
	// when the public IP is wanted).
	PublicAddress func(transport string) string
	Resolver      Resolver
	Log           *slog.Logger
}

// Options are the timings and limits (config.Regbot plus the cluster id).
type Options struct {
	config.Regbot
	ClusterID string
	// UnregisterTimeout bounds the un-registration on shutdown.
	UnregisterTimeout time.Duration
	// RequestTimeout bounds one REGISTER transaction (0: the client's).
	RequestTimeout time.Duration
}

// Status is the regbot view for operators (`cli regbot status`).
type Status struct {
	Leader     bool   `json:"active"`
	Total      int    `json:"total"`
	Registered int    `json:"registered"`
	Token      string `json:"token"`
}

// Regbot owns the leader claim and the agents.
type Regbot struct {
	deps   Deps
	opts   Options
	leader *Leader
	log    *slog.Logger

	mu           sync.Mutex
	isLeader     bool
	leaderCtx    context.Context
	leaderCancel context.CancelFunc
	agents       map[agentKey]*agent
	domain       string
	domainAt     time.Time
}

// New builds a Regbot; Run starts it.
func New(deps Deps, opts Options) *Regbot {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Alerter == nil {
		deps.Alerter = alerts.Discard{}
	}
	if deps.Resolver == nil {
		deps.Resolver = net.DefaultResolver
	}
	if deps.PublicAddress == nil {
		deps.PublicAddress = func(string) string { return "" }
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Minute
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10
	}
	if opts.UnregisterTimeout <= 0 {
		opts.UnregisterTimeout = 5 * time.Second
	}
	if opts.ClusterID == "" {
		opts.ClusterID = "default"
	}
	// The original's 70 s for a 60 s check: a crashed leader's claim lapses
	// soon after its next missed renewal. At least 1 s of margin so a late
	// renewal on a busy machine does not create two leaders.
	ttl := opts.StatusInterval + max(opts.StatusInterval/6, time.Second)
	return &Regbot{
		deps:   deps,
		opts:   opts,
		leader: NewLeader(deps.Store, opts.ClusterID, ttl),
		log:    deps.Log.With("component", "regbot"),
		agents: map[agentKey]*agent{},
	}
}

// Status returns the current view.
func (r *Regbot) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Leader: r.isLeader, Total: len(r.agents), Token: r.leader.Token()}
	for _, a := range r.agents {
		if a.registered() {
			s.Registered++
		}
	}
	return s
}

// Run waits a random delay (up to StartDelayMax, so instances starting
// together do not race), then checks leadership every StatusInterval until
// ctx ends. On the way out a leader un-registers its agents (bounded by
// UnregisterTimeout) and releases the token.
func (r *Regbot) Run(ctx context.Context) error {
	if d := r.opts.StartDelayMax; d > 0 {
		delay := time.Duration(rand.Int64N(int64(d)))
		r.log.Info("regbot: waiting before claiming the token", "delay", delay.String(), "token", r.leader.Token())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	// Carriers are synced in their own goroutine: a paced start of
	// thousands of agents takes longer than the token lives, and renewals
	// must not wait for it.
	trigger := make(chan struct{}, 1)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		r.syncLoop(ctx, trigger)
	}()
	t := time.NewTicker(r.opts.StatusInterval)
	defer t.Stop()
	r.check(ctx, trigger)
	for {
		select {
		case <-ctx.Done():
			<-syncDone
			r.shutdown()
			return nil
		case <-t.C:
			r.check(ctx, trigger)
		}
	}
}

// syncLoop runs sync whenever check asks for it, with a context that ends
// when this instance stands down.
func (r *Regbot) syncLoop(ctx context.Context, trigger <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		}
		r.mu.Lock()
		lctx := r.leaderCtx
		r.mu.Unlock()
		if lctx == nil {
			continue
		}
		if err := r.sync(lctx); err != nil && lctx.Err() == nil {
			r.log.Error("regbot: updating carrier registrations failed", "err", err)
		}
	}
}

// check renews or claims the token; as leader it asks for a carrier sync.
func (r *Regbot) check(ctx context.Context, trigger chan<- struct{}) {
	r.mu.Lock()
	was := r.isLeader
	r.mu.Unlock()

	leader := false
	var err error
	if was {
		leader, err = r.leader.Renew(ctx)
		if err == nil && !leader {
			r.log.Info("regbot: another instance holds the token, standing down")
			r.setLeader(ctx, false)
			r.stopAll(ctx, false)
			// The token may have expired rather than been taken: try again.
			leader, err = r.leader.Claim(ctx)
		}
	} else {
		leader, err = r.leader.Claim(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("regbot: leadership check failed", "err", err)
		}
		return
	}
	if leader && !was {
		r.log.Info("regbot: claimed the regbot token", "key", r.leader.Key(), "token", r.leader.Token())
	}
	r.setLeader(ctx, leader)
	if leader {
		select {
		case trigger <- struct{}{}:
		default: // a sync is already pending
		}
	}
	s := r.Status()
	r.log.Info("regbot: status", "active", s.Leader, "total", s.Total, "registered", s.Registered)
}

// setLeader records the role; leaving it cancels a running sync.
func (r *Regbot) setLeader(ctx context.Context, v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v == r.isLeader {
		return
	}
	r.isLeader = v
	if v {
		r.leaderCtx, r.leaderCancel = context.WithCancel(ctx)
		return
	}
	if r.leaderCancel != nil {
		r.leaderCancel()
	}
	r.leaderCtx, r.leaderCancel = nil, nil
}

// sync starts new or changed agents (paced), keeps unchanged ones and stops
// removed ones.
func (r *Regbot) sync(ctx context.Context) error {
	targets, err := r.deps.Carriers.RegisterTargets(ctx)
	if err != nil {
		return err
	}
	want := map[agentKey]Target{}
	var order []agentKey
	for _, t := range targets {
		if t.Password == "" {
			r.log.Debug("regbot: gateway without password ignored", "carrier_sid", t.CarrierSID, "gateway_sid", t.GatewaySID)
			continue
		}
		k := keyOf(t)
		if _, dup := want[k]; dup {
			r.log.Debug("regbot: duplicate gateway ignored", "carrier_sid", t.CarrierSID, "gateway_sid", t.GatewaySID)
			continue
		}
		want[k] = t
		order = append(order, k)
	}

	r.mu.Lock()
	var stale []*agent
	for k, a := range r.agents {
		if t, ok := want[k]; !ok || t != a.target {
			stale = append(stale, a)
			delete(r.agents, k)
		}
	}
	var fresh []agentKey
	for _, k := range order {
		if _, ok := r.agents[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	r.mu.Unlock()

	for _, a := range stale {
		a.stop(ctx, false)
	}
	if len(stale)+len(fresh) > 0 {
		r.log.Info("regbot: carrier registrations changed", "stopped", len(stale), "starting", len(fresh), "total", len(want))
	}
	domain := r.sipDomain(ctx)
	for i, k := range fresh {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if i > 0 && i%r.opts.BatchSize == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.opts.BatchSleep):
			}
		}
		a, err := newAgent(r, want[k], domain)
		if err != nil {
			r.log.Warn("regbot: cannot start registration", "carrier_sid", want[k].CarrierSID, "err", err)
			r.writeStatus(ctx, want[k].CarrierSID, statusJSON{Status: "fail", Reason: err.Error()})
			continue
		}
		r.mu.Lock()
		stillLeader := r.isLeader
		if stillLeader {
			r.agents[k] = a
		}
		r.mu.Unlock()
		if !stillLeader {
			return nil
		}
		a.start()
	}
	return nil
}

// sipDomain is system_information.sip_domain_name, re-read every 5 minutes.
func (r *Regbot) sipDomain(ctx context.Context) string {
	r.mu.Lock()
	d, at := r.domain, r.domainAt
	r.mu.Unlock()
	if !at.IsZero() && time.Since(at) < 5*time.Minute {
		return d
	}
	d, err := r.deps.Carriers.SIPDomain(ctx)
	if err != nil {
		r.log.Warn("regbot: reading system_information failed", "err", err)
	}
	r.mu.Lock()
	r.domain, r.domainAt = d, time.Now()
	r.mu.Unlock()
	return d
}

// stopAll stops every agent; unregister sends Expires: 0 for registered ones.
func (r *Regbot) stopAll(ctx context.Context, unregister bool) {
	r.mu.Lock()
	all := make([]*agent, 0, len(r.agents))
	for k, a := range r.agents {
		all = append(all, a)
		delete(r.agents, k)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, a := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.stop(ctx, unregister)
		}()
	}
	wg.Wait()
}

// shutdown un-registers (as leader) within UnregisterTimeout and releases
// the token so another instance can take over at its next check.
func (r *Regbot) shutdown() {
	r.mu.Lock()
	leader := r.isLeader
	r.mu.Unlock()
	if !leader {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.UnregisterTimeout)
	defer cancel()
	n := r.Status().Registered
	r.setLeader(ctx, false)
	r.stopAll(ctx, true)
	if err := r.leader.Release(ctx); err != nil {
		r.log.Warn("regbot: releasing the token failed", "err", err)
	}
	r.log.Info("regbot: stopped", "unregistered", n)
}

// forget removes a disabled agent from the set.
func (r *Regbot) forget(a *agent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.agents[a.key]; ok && cur == a {
		delete(r.agents, a.key)
	}
}
