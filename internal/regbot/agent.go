package regbot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// agentKey identifies a registration: the original keeps one per unique
// gateway host, realm and credentials; host lists every gateway of a
// failover group (groupTargets).
type agentKey struct{ host, realm, username, password string }

func keyOf(t Target) agentKey {
	return agentKey{host: t.Host, realm: realmOf(t), username: t.Username, password: t.Password}
}

func keyOfGroup(ts []Target) agentKey {
	k := keyOf(ts[0])
	if len(ts) > 1 {
		hosts := make([]string, len(ts))
		for i, t := range ts {
			hosts[i] = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
		}
		k.host = strings.Join(hosts, ",")
	}
	return k
}

// groupKey puts the gateways of a carrier that register the same AoR
// (an explicit register_sip_realm, same credentials and transport) in one
// failover group: one binding, moved between them. Without a realm each
// gateway is its own registrar (realm = its host), as in the original.
type groupKey struct {
	carrier, gateway, realm, username, password, protocol string
	sips                                                  bool
}

func groupOf(t Target) groupKey {
	if t.Realm == "" {
		return groupKey{gateway: t.GatewaySID}
	}
	return groupKey{carrier: t.CarrierSID, realm: t.Realm, username: t.Username, password: t.Password,
		protocol: strings.ToLower(t.Protocol), sips: t.UseSIPS}
}

// groupTargets groups targets (groupOf), keeping the directory's order.
func groupTargets(targets []Target) [][]Target {
	idx := map[groupKey]int{}
	var out [][]Target
	for _, t := range targets {
		g := groupOf(t)
		if i, ok := idx[g]; ok {
			out[i] = append(out[i], t)
			continue
		}
		idx[g] = len(out)
		out = append(out, []Target{t})
	}
	return out
}

func realmOf(t Target) string {
	if t.Realm != "" {
		return t.Realm
	}
	return t.Host
}

const (
	stateNone int32 = iota
	stateRegistered
	stateFailed
)

// EphemeralKey is the hash sbc-inbound reads to accept calls from a reg
// trunk's gateway address.
func EphemeralKey(ip string) string { return "eph-gw-ip:" + ip }

// ephemeralTTL is the key TTL of eph-gw-ip:<ip> hashes (docs/contract.md#redis).
const ephemeralTTL = 7200 * time.Second

// agent keeps one carrier registration alive.
type agent struct {
	r       *Regbot
	target  Target   // the first gateway: Call-ID, From, credentials
	targets []Target // the failover group, target first
	key     agentKey
	// local: an all-SBC carrier; this instance's own Contact and per-SBC
	// status (allsbcs.go).
	local bool

	password  string
	transport string
	scheme    string
	realm     string
	fromURI   sip.Uri
	fromTag   string
	domain    string // system sip_domain_name at start

	cseq   atomic.Uint32
	state  atomic.Int32
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	expires  int // asked for; raised by a 423
	failures int // counted towards the disable threshold
	backoff  int // consecutive backoff decisions
	last     agentStatus
	ephIPs   []string
	// sbcStatus is the last status of an all-SBC agent, re-published by
	// heartbeats.
	sbcStatus *statusJSON
	// hops are the destinations of this round (gateways, SRV targets), in
	// order of preference; nil: resolve at the next attempt. hop is the one
	// in use (where the binding lives), tried how many failed this round.
	hops  []string
	hop   int
	tried int
}

// agentStatus is the last decision of an agent, for operators.
type agentStatus struct {
	Answer   string
	Decision Decision
	Next     time.Time
	Expires  int
}

func newAgent(r *Regbot, t Target, domain string) (*agent, error) {
	a := &agent{r: r, target: t, targets: []Target{t}, key: keyOf(t), domain: domain, done: make(chan struct{}), expires: r.opts.DefaultExpires}
	a.password = t.Password
	if r.deps.Cipher != nil && credcrypt.IsEncrypted(t.Password) {
		p, err := r.deps.Cipher.Decrypt(t.Password)
		if err != nil {
			return nil, fmt.Errorf("decrypting register_password: %w", err)
		}
		a.password = p
	}
	a.transport = strings.ToLower(t.Protocol)
	if i := strings.IndexByte(a.transport, '/'); i >= 0 {
		a.transport = a.transport[:i]
	}
	if a.transport == "" {
		a.transport = "udp"
	}
	a.scheme = "sip"
	if a.transport == "tls" && t.UseSIPS {
		a.scheme = "sips"
	}
	a.realm = realmOf(t)
	user := t.FromUser
	if user == "" {
		user = t.Username
	}
	fromDomain := t.FromDomain
	if fromDomain == "" {
		fromDomain = a.realm
	}
	if !validHost(fromDomain) {
		return nil, fmt.Errorf("invalid from domain %q", fromDomain)
	}
	if !validHost(a.realm) {
		return nil, fmt.Errorf("invalid sip realm %q", a.realm)
	}
	if user == "" || strings.ContainsAny(user, " <>\"@;") {
		return nil, fmt.Errorf("invalid from user %q", user)
	}
	if err := sip.ParseUri("sip:"+user+"@"+fromDomain, &a.fromURI); err != nil {
		return nil, fmt.Errorf("invalid from address: %w", err)
	}
	a.fromTag = sip.GenerateTagN(16)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// validHost accepts a domain name or IP, optionally with a port.
func validHost(h string) bool {
	if h == "" || len(h) > 255 || strings.ContainsAny(h, " \t<>\"@;,/") {
		return false
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return h != ""
}

// newGroupAgent is newAgent for a failover group (groupTargets).
func newGroupAgent(r *Regbot, ts []Target, domain string) (*agent, error) {
	a, err := newAgent(r, ts[0], domain)
	if err != nil {
		return nil, err
	}
	a.targets, a.key = ts, keyOfGroup(ts)
	return a, nil
}

func (a *agent) registered() bool { return a.state.Load() == stateRegistered }

func (a *agent) status() AgentStatus {
	st := AgentStatus{CarrierSID: a.target.CarrierSID, AOR: a.aor(), Gateway: a.target.Host, State: "starting"}
	a.mu.Lock()
	if a.hop < len(a.hops) {
		st.Gateway = a.hops[a.hop]
	}
	a.mu.Unlock()
	switch a.state.Load() {
	case stateRegistered:
		st.State = "registered"
	case stateFailed:
		st.State = "failed"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st.LastAnswer, st.Decision, st.Expires, st.Failures = a.last.Answer, a.last.Decision, a.expires, a.failures
	if a.last.Expires > 0 {
		st.Expires = a.last.Expires
	}
	st.AllSBCs = a.local
	if !a.last.Next.IsZero() {
		st.NextAttempt = a.last.Next.UTC().Format(timeLayout)
	}
	return st
}

func (a *agent) start() { go a.run() }

// run registers, refreshes at half the granted expiry and retries after
// failures until stopped or disabled.
func (a *agent) run() {
	defer close(a.done)
	a.r.log.Info("regbot: starting registration", "aor", a.aor(), "carrier_sid", a.target.CarrierSID, "gateway", a.target.Host)
	for {
		next, ok := a.attempt(a.ctx)
		if !ok {
			return
		}
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func (a *agent) aor() string { return a.fromURI.User + "@" + a.realm }

// timeLayout is the original's register_status timestamp (UTC, ms), also
// used for next attempts in logs and the CLI.
const timeLayout = "2006-01-02T15:04:05.000Z"

// statusJSON is voip_carriers.register_status (docs/contract.md#mysql).
type statusJSON struct {
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	CSeq      string `json:"cseq,omitempty"`
	CallID    string `json:"callId,omitempty"`
	Timestamp string `json:"timestamp,omitempty"`
	Expires   *int   `json:"expires,omitempty"`
	// SBCs is every SBC's own status of an all-SBC carrier, by address.
	SBCs map[string]statusJSON `json:"sbcs,omitempty"`
}

func (r *Regbot) writeStatus(ctx context.Context, carrierSID string, s statusJSON) {
	b, _ := json.Marshal(s)
	if err := r.deps.Carriers.UpdateRegisterStatus(ctx, carrierSID, string(b)); err != nil && ctx.Err() == nil {
		r.log.Warn("regbot: writing register_status failed", "carrier_sid", carrierSID, "err", err)
	}
}

// attempt sends one REGISTER (answering a challenge) and returns when to
// send the next; ok false means stop. What follows each answer is decided
// by the policy (docs/outbound.md#retry-policy) and logged once.
func (a *agent) attempt(ctx context.Context) (time.Duration, bool) {
	opts := a.r.opts
	dest := a.destination(ctx)
	a.mu.Lock()
	expires := a.expires
	a.mu.Unlock()
	res, sent, err := a.register(ctx, expires)
	if ctx.Err() != nil {
		return 0, false
	}
	log := a.r.log.With("aor", a.aor(), "carrier_sid", a.target.CarrierSID, "gateway", dest)
	now := time.Now()
	ts := now.UTC().Format(timeLayout)
	st := statusJSON{CSeq: headerValue(sent, "CSeq"), CallID: a.target.GatewaySID, Timestamp: ts}
	answer := ""
	if err != nil {
		st = statusJSON{Status: "fail", Reason: err.Error(), Timestamp: ts}
		answer = "no answer: " + err.Error()
	} else {
		st.Reason = fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
		answer = st.Reason
	}

	if err == nil && res.StatusCode == 200 {
		granted := grantedExpires(res, expires, opts.MinExpires)
		was := a.state.Swap(stateRegistered)
		next := time.Duration(granted) * time.Second / 2
		a.mu.Lock()
		a.failures, a.backoff, a.tried = 0, 0, 0
		a.last = agentStatus{Answer: answer, Decision: DecisionRefresh, Next: now.Add(next), Expires: granted}
		a.mu.Unlock()
		st.Status, st.Expires = "ok", &granted
		a.report(ctx, st)
		lvl := slog.LevelDebug
		if was != stateRegistered {
			lvl = slog.LevelInfo
		}
		log.Log(ctx, lvl, "regbot: registered", "status", 200, "decision", DecisionRefresh, "expires", granted,
			"retry_in", next.String(), "next_attempt", now.Add(next).UTC().Format(timeLayout))
		if a.target.TrunkType == "reg" {
			a.writeEphemeral(ctx, granted)
		}
		return next, true
	}

	a.state.Store(stateFailed)
	if err == nil {
		zero := 0
		st.Status, st.Expires = "fail", &zero
	}
	a.report(ctx, st)
	o := outcomeOf(res, sent, expires)
	a.mu.Lock()
	o.backoff, o.failures = a.backoff, a.failures
	v := a.r.policy.decide(o)
	switch v.decision {
	case DecisionBackoff, DecisionRetryAfter:
		// The hop is unavailable: the next one at once while this round
		// has untried hops; the policy's wait once all failed.
		a.tried++
		if a.tried < len(a.hops) {
			v.decision, v.delay, v.backoff = DecisionFailover, 0, o.backoff
			a.hop = (a.hop + 1) % len(a.hops)
		} else {
			a.hops = nil
		}
	case DecisionMinExpires:
	default:
		// An answer about the account: another hop would say the same.
		a.tried = 0
	}
	a.expires, a.backoff, a.failures = v.expires, v.backoff, v.failures
	a.last = agentStatus{Answer: answer, Decision: v.decision, Expires: v.expires}
	if v.decision != DecisionDisable {
		a.last.Next = now.Add(v.delay)
	}
	a.mu.Unlock()

	args := []any{"status", o.code, "decision", v.decision, "failures", v.failures, "threshold", opts.FailureThreshold}
	if v.decision != DecisionDisable {
		args = append(args, "retry_in", v.delay.String(), "next_attempt", now.Add(v.delay).UTC().Format(timeLayout))
	}
	if v.decision == DecisionMinExpires {
		args = append(args, "expires", v.expires)
	}
	if err != nil {
		args = append(args, "err", err)
	}
	log.Info("regbot: registration failed", args...)
	if v.decision == DecisionDisable {
		a.disable(ctx)
		return 0, false
	}
	return v.delay, true
}

// disable turns the carrier's registration (or the reg trunk) off after too
// many failures and leaves the set.
func (a *agent) disable(ctx context.Context) {
	t := a.target
	reg := t.TrunkType == "reg"
	msg := fmt.Sprintf("Disabling Outbound Registration for carrier %s (sid:%s)", t.CarrierName, t.CarrierSID)
	if reg {
		msg = fmt.Sprintf("Deactivating carrier %s (sid:%s) due to registration errors", t.CarrierName, t.CarrierSID)
	}
	if err := a.r.deps.Carriers.DisableRegistration(ctx, t.CarrierSID, reg); err != nil {
		a.r.log.Error("regbot: disabling carrier failed", "carrier_sid", t.CarrierSID, "err", err)
		return
	}
	a.r.log.Info("regbot: "+msg, "carrier_sid", t.CarrierSID)
	a.r.deps.Alerter.Alert(ctx, alerts.Alert{AccountSID: t.AccountSID, ServiceProviderSID: t.ServiceProviderSID, Message: msg})
	a.removeEphemeral(ctx)
	a.r.forget(a)
}

// register sends REGISTER with expires and answers one 401/407 challenge.
// It returns the final response and the request that got it.
func (a *agent) register(ctx context.Context, expires int) (*sip.Response, *sip.Request, error) {
	req, err := a.request(expires)
	if err != nil {
		return nil, nil, err
	}
	res, err := a.do(ctx, req)
	if err != nil {
		return nil, req, err
	}
	if res.StatusCode != 401 && res.StatusCode != 407 {
		return res, req, nil
	}
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(chName)
	if h == nil {
		return res, req, nil
	}
	ch, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return nil, req, fmt.Errorf("challenge from %s: %w", a.target.Host, err)
	}
	req2, err := a.request(expires)
	if err != nil {
		return nil, nil, err
	}
	cred, err := ch.Authorize("REGISTER", req2.Recipient.String(), a.target.Username, a.password, 1)
	if err != nil {
		return nil, req2, fmt.Errorf("answering challenge from %s: %w", a.target.Host, err)
	}
	req2.AppendHeader(sip.NewHeader(authName, cred))
	res, err = a.do(ctx, req2)
	return res, req2, err
}

// do sends one REGISTER, bounded by RequestTimeout when set.
func (a *agent) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if d := a.r.opts.RequestTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return a.r.deps.Client.Do(ctx, a.outbound(req))
}

// request builds a REGISTER (docs/contract.md#outbound-registration) with the next CSeq.
func (a *agent) request(expires int) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(a.scheme+":"+a.realm, &ruri); err != nil {
		return nil, fmt.Errorf("request-uri %s:%s: %w", a.scheme, a.realm, err)
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	from := &sip.FromHeader{Address: a.fromURI, Params: sip.NewParams()}
	from.Params.Add("tag", a.fromTag)
	to := &sip.ToHeader{Address: a.fromURI, Params: sip.NewParams()}
	callID := sip.CallIDHeader(a.target.GatewaySID)
	cseq := &sip.CSeqHeader{SeqNo: a.cseq.Add(1), MethodName: sip.REGISTER}
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(cseq)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<%s:%s@%s;transport=%s>;expires=%d",
		a.scheme, a.fromURI.User, a.contactHost(), a.transport, expires)))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	if ua := a.r.opts.UserAgent; ua != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", ua))
	}
	req.SetBody(nil)
	return req, nil
}

// contactHost: the SBC public address when asked for (always for all-SBC
// carriers: each instance holds its own binding), else the account's
// realm, else the system SIP domain, else the registration realm.
func (a *agent) contactHost() string {
	if a.local || a.target.PublicIPInContact || a.r.opts.ContactUseIP {
		if p := a.r.deps.PublicAddress(a.transport); p != "" {
			return p
		}
	}
	if a.target.AccountRealm != "" {
		return a.target.AccountRealm
	}
	if a.domain != "" {
		return a.domain
	}
	return a.realm
}

// outbound addresses req to the hop in use (destination).
func (a *agent) outbound(req *sip.Request) sipfront.OutboundRequest {
	a.mu.Lock()
	dest := nextHop(a.target)
	if a.hop < len(a.hops) {
		dest = a.hops[a.hop]
	}
	a.mu.Unlock()
	return sipfront.OutboundRequest{Msg: req, Destination: dest, Transport: a.transport}
}

// destination returns the hop in use, resolving the round's hops first when
// needed (first attempt, or after every hop failed).
func (a *agent) destination(ctx context.Context) string {
	a.mu.Lock()
	if a.hops != nil {
		defer a.mu.Unlock()
		return a.hops[a.hop]
	}
	a.mu.Unlock()
	hops := a.resolveHops(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hops, a.hop, a.tried = hops, 0, 0
	return hops[0]
}

// resolveHops lists where REGISTERs may go, in order of preference: the
// outbound proxy alone; else per gateway its ip:port, or for a name its
// SRV targets (priority, then weight, as the resolver orders them) and the
// bare name when it has none (the client then resolves it).
func (a *agent) resolveHops(ctx context.Context) []string {
	if a.target.OutboundProxy != "" {
		return []string{nextHop(a.target)}
	}
	var hops []string
	for _, t := range a.targets {
		hop := nextHop(t)
		if net.ParseIP(t.Host) == nil {
			if srvs := a.lookupSRV(ctx, t.Host); len(srvs) > 0 {
				for _, s := range srvs {
					hops = a.appendSRVTarget(ctx, hops, strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
				}
				continue
			}
		}
		hops = appendNew(hops, hop)
	}
	return hops
}

// appendSRVTarget adds an SRV target's addresses (ip:port each, so every
// address is a hop of its own) or, over TLS, its name:port: the name is
// what the carrier's certificate is checked against.
func (a *agent) appendSRVTarget(ctx context.Context, hops []string, name, port string) []string {
	if a.transport != "tls" {
		if ips := lookupV4(ctx, a.r.deps.Resolver, name); len(ips) > 0 {
			for _, ip := range ips {
				hops = appendNew(hops, net.JoinHostPort(ip, port))
			}
			return hops
		}
	}
	return appendNew(hops, net.JoinHostPort(name, port))
}

func appendNew(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// lookupSRV returns the SRV records of host for the agent's transport
// (_sip._udp, _sip._tcp, _sips._tcp), nil when there are none.
func (a *agent) lookupSRV(ctx context.Context, host string) []*net.SRV {
	proto, service := "udp", "sip"
	switch a.transport {
	case "tcp":
		proto = "tcp"
	case "tls":
		proto, service = "tcp", "sips"
	}
	_, srvs, err := a.r.deps.Resolver.LookupSRV(ctx, service, proto, host)
	if err != nil {
		return nil
	}
	return srvs
}

func nextHop(t Target) string {
	if p := strings.TrimSpace(t.OutboundProxy); p != "" {
		p = strings.TrimPrefix(strings.TrimPrefix(p, "sips:"), "sip:")
		if i := strings.IndexAny(p, ";>"); i >= 0 {
			p = p[:i]
		}
		return p
	}
	if net.ParseIP(t.Host) != nil && t.Port > 0 {
		return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	}
	return t.Host
}

// grantedExpires reads the granted expiry: the Contact expires parameter,
// else the Expires header, else def; never below min.
func grantedExpires(res *sip.Response, def, min int) int {
	expires := def
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			expires = n
		}
	}
	// The first Contact, as the original reads it.
	if hs := res.GetHeaders("Contact"); len(hs) > 0 {
		if c, ok := hs[0].(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil {
					expires = n
				}
			}
		}
	}
	if expires < min {
		expires = min
	}
	return expires
}

func headerValue(m *sip.Request, name string) string {
	if m == nil {
		return ""
	}
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// stop ends the agent; unregister sends Expires: 0 first when registered.
// Ephemeral gateways it wrote are removed.
func (a *agent) stop(ctx context.Context, unregister bool) {
	a.cancel()
	<-a.done
	if unregister && a.registered() {
		res, _, err := a.register(ctx, 0)
		switch {
		case err != nil:
			a.r.log.Warn("regbot: un-register failed", "aor", a.aor(), "err", err)
		default:
			a.r.log.Info("regbot: un-registered", "aor", a.aor(), "status", res.StatusCode)
		}
	}
	a.state.Store(stateNone)
	if !a.local {
		// Other SBCs may still hold the carrier's registration: an all-SBC
		// agent leaves its ephemeral gateways to their expiry.
		a.removeEphemeral(ctx)
	}
}

// writeEphemeral records the reg trunk's gateway addresses so inbound calls
// from them are accepted: eph-gw-ip:<ip> field <carrier_sid> = expiry.
func (a *agent) writeEphemeral(ctx context.Context, expires int) {
	ips := a.resolve(ctx)
	if len(ips) == 0 {
		a.r.log.Info("regbot: no addresses for reg-gateway", "gateway", a.target.Host)
		return
	}
	exp := strconv.FormatInt(time.Now().Add(time.Duration(expires)*time.Second).Unix(), 10)
	// Remember what was written even after a failure, so stop removes it.
	written := make([]string, 0, len(ips))
	for _, ip := range ips {
		if err := a.r.deps.Store.HSetTTL(ctx, EphemeralKey(ip), map[string]string{a.target.CarrierSID: exp}, ephemeralTTL); err != nil {
			a.r.log.Error("regbot: writing ephemeral gateways failed", "address", ip, "err", err)
			break
		}
		written = append(written, ip)
	}
	a.mu.Lock()
	a.ephIPs = written
	a.mu.Unlock()
}

func (a *agent) removeEphemeral(ctx context.Context) {
	a.mu.Lock()
	ips := a.ephIPs
	a.ephIPs = nil
	a.mu.Unlock()
	if len(ips) == 0 {
		return
	}
	if ctx.Err() != nil {
		// Stopping after a deadline: still clean up, briefly.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	for _, ip := range ips {
		if err := a.r.deps.Store.HDel(ctx, EphemeralKey(ip), a.target.CarrierSID); err != nil {
			a.r.log.Error("regbot: deleting ephemeral gateways failed", "address", ip, "err", err)
		}
	}
}

// resolve returns the IPv4 addresses of the group's gateways: literals, A
// records when a port is given, else SRV targets then A.
func (a *agent) resolve(ctx context.Context) []string {
	var out []string
	for _, t := range a.targets {
		for _, ip := range a.resolveGateway(ctx, t) {
			out = appendNew(out, ip)
		}
	}
	return out
}

func (a *agent) resolveGateway(ctx context.Context, t Target) []string {
	host := t.Host
	if ip := net.ParseIP(host); ip != nil {
		return []string{host}
	}
	res := a.r.deps.Resolver
	if t.Port == 0 {
		var out []string
		for _, s := range a.lookupSRV(ctx, host) {
			out = append(out, lookupV4(ctx, res, strings.TrimSuffix(s.Target, "."))...)
		}
		if len(out) > 0 {
			return out
		}
	}
	return lookupV4(ctx, res, host)
}

func lookupV4(ctx context.Context, res Resolver, host string) []string {
	addrs, err := res.LookupHost(ctx, host)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range addrs {
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
			out = append(out, s)
		}
	}
	return out
}
