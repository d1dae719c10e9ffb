// Package regbot registers this SBC to the carriers that require it
// (docs/contract.md#outbound-registration): one leader per cluster does the work, one agent per
// unique (host, realm, username, password), agents restarted only when their
// row changes.
package regbot

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
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
	// AllSBCs: every instance registers this carrier itself
	// (docs/outbound.md#registering-from-every-sbc).
	AllSBCs bool
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
	// HGetAll returns a hash's fields (per-SBC registration status).
	HGetAll(ctx context.Context, key string) (map[string]string, error)
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
	Leader     bool          `json:"active"`
	Total      int           `json:"total"`
	Registered int           `json:"registered"`
	Token      string        `json:"token"`
	Agents     []AgentStatus `json:"agents,omitempty"`
}

// AgentStatus is one registration: its state and the last decision.
type AgentStatus struct {
	CarrierSID string   `json:"carrier_sid"`
	AOR        string   `json:"aor"`
	Gateway    string   `json:"gateway"`
	State      string   `json:"state"` // registered, failed, starting
	LastAnswer string   `json:"last_answer,omitempty"`
	Decision   Decision `json:"decision,omitempty"`
	// NextAttempt is UTC with milliseconds, "" before the first answer.
	NextAttempt string `json:"next_attempt,omitempty"`
	Expires     int    `json:"expires"`
	Failures    int    `json:"failures"`
	// AllSBCs: registered by every instance, not by the leader alone.
	AllSBCs bool `json:"all_sbcs,omitempty"`
}

// Regbot owns the leader claim and the agents.
type Regbot struct {
	deps   Deps
	opts   Options
	policy policy
	leader *Leader
	log    *slog.Logger

	mu           sync.Mutex
	isLeader     bool
	leaderCtx    context.Context
	leaderCancel context.CancelFunc
	agents       map[agentKey]*agent // the leader's
	local        map[agentKey]*agent // all-SBC carriers: every instance's own
	aggSig       map[string]string   // carrier sid -> per-SBC view last written
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
	if opts.DefaultExpires <= 0 {
		opts.DefaultExpires = 3600
	}
	// The original's 70 s for a 60 s check: a crashed leader's claim lapses
	// soon after its next missed renewal. At least 1 s of margin so a late
	// renewal on a busy machine does not create two leaders.
	ttl := opts.StatusInterval + max(opts.StatusInterval/6, time.Second)
	return &Regbot{
		deps:   deps,
		opts:   opts,
		policy: newPolicy(opts),
		leader: NewLeader(deps.Store, opts.ClusterID, ttl),
		log:    deps.Log.With("component", "regbot"),
		agents: map[agentKey]*agent{},
		local:  map[agentKey]*agent{},
		aggSig: map[string]string{},
	}
}

// Status returns the current view.
func (r *Regbot) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Leader: r.isLeader, Total: len(r.agents) + len(r.local), Token: r.leader.Token()}
	for _, set := range []map[agentKey]*agent{r.agents, r.local} {
		for _, a := range set {
			if a.registered() {
				s.Registered++
			}
		}
	}
	return s
}

// Agents returns every registration's state and last decision, ordered by
// carrier and gateway.
func (r *Regbot) Agents() []AgentStatus {
	r.mu.Lock()
	all := make([]*agent, 0, len(r.agents)+len(r.local))
	for _, a := range r.agents {
		all = append(all, a)
	}
	for _, a := range r.local {
		all = append(all, a)
	}
	r.mu.Unlock()
	out := make([]AgentStatus, 0, len(all))
	for _, a := range all {
		out = append(out, a.status())
	}
	slices.SortFunc(out, func(x, y AgentStatus) int {
		return cmp.Or(cmp.Compare(x.CarrierSID, y.CarrierSID), cmp.Compare(x.Gateway, y.Gateway), cmp.Compare(x.AOR, y.AOR))
	})
	return out
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
		if err := r.sync(ctx, lctx); err != nil && ctx.Err() == nil && (lctx == nil || lctx.Err() == nil) {
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
	// Every instance syncs: all-SBC carriers run everywhere; the leader's
	// carriers only where leaderCtx is set.
	select {
	case trigger <- struct{}{}:
	default: // a sync is already pending
	}
	r.heartbeat(ctx)
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

// sync reads the carriers and syncs the all-SBC agents (ctx) and, as
// leader (lctx not nil), the leader's agents.
func (r *Regbot) sync(ctx, lctx context.Context) error {
	targets, err := r.deps.Carriers.RegisterTargets(ctx)
	if err != nil {
		return err
	}
	var shared, local []Target
	for _, t := range targets {
		switch {
		case t.Password == "":
			r.log.Debug("regbot: gateway without password ignored", "carrier_sid", t.CarrierSID, "gateway_sid", t.GatewaySID)
		case t.AllSBCs || r.opts.AllSBCs:
			local = append(local, t)
		default:
			shared = append(shared, t)
		}
	}
	if err := r.syncSet(ctx, local, true); err != nil {
		return err
	}
	if lctx == nil {
		return nil
	}
	return r.syncSet(lctx, shared, false)
}

// syncSet starts new or changed agents of a set (paced), keeps unchanged
// ones and stops removed ones.
func (r *Regbot) syncSet(ctx context.Context, usable []Target, local bool) error {
	set := r.agents
	if local {
		set = r.local
	}
	want := map[agentKey][]Target{}
	var order []agentKey
	for _, g := range groupTargets(usable) {
		k := keyOfGroup(g)
		if _, dup := want[k]; dup {
			r.log.Debug("regbot: duplicate gateway ignored", "carrier_sid", g[0].CarrierSID, "gateway_sid", g[0].GatewaySID)
			continue
		}
		want[k] = g
		order = append(order, k)
	}

	r.mu.Lock()
	var stale []*agent
	for k, a := range set {
		if g, ok := want[k]; !ok || !slices.Equal(g, a.targets) {
			stale = append(stale, a)
			delete(set, k)
		}
	}
	var fresh []agentKey
	for _, k := range order {
		if _, ok := set[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	r.mu.Unlock()

	for _, a := range stale {
		a.stop(ctx, false)
		if local {
			a.withdraw(ctx)
		}
	}
	if len(stale)+len(fresh) > 0 {
		r.log.Info("regbot: carrier registrations changed", "stopped", len(stale), "starting", len(fresh), "total", len(want), "all_sbcs", local)
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
		a, err := newGroupAgent(r, want[k], domain)
		if err != nil {
			r.log.Warn("regbot: cannot start registration", "carrier_sid", want[k][0].CarrierSID, "err", err)
			r.writeStatus(ctx, want[k][0].CarrierSID, statusJSON{Status: "fail", Reason: err.Error()})
			continue
		}
		a.local = local
		r.mu.Lock()
		keep := local || r.isLeader
		if keep {
			set[k] = a
		}
		r.mu.Unlock()
		if !keep {
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

// stopAll stops every agent of the leader; unregister sends Expires: 0 for
// registered ones.
func (r *Regbot) stopAll(ctx context.Context, unregister bool) {
	r.stopSet(ctx, r.agents, unregister)
}

// stopSet stops (and un-registers) a set's agents and returns them.
func (r *Regbot) stopSet(ctx context.Context, set map[agentKey]*agent, unregister bool) []*agent {
	r.mu.Lock()
	all := make([]*agent, 0, len(set))
	for k, a := range set {
		all = append(all, a)
		delete(set, k)
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
	return all
}

// shutdown un-registers (as leader) within UnregisterTimeout and releases
// the token so another instance can take over at its next check.
func (r *Regbot) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.UnregisterTimeout)
	defer cancel()
	r.stopLocal(ctx)
	r.mu.Lock()
	leader := r.isLeader
	r.mu.Unlock()
	if !leader {
		return
	}
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
	set := r.agents
	if a.local {
		set = r.local
	}
	if cur, ok := set[a.key]; ok && cur == a {
		delete(set, a.key)
	}
}
