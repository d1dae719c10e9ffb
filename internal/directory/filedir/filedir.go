// Package filedir is the directory of standalone mode: accounts, their
// registration webhooks and capacities, clients, carriers and gateways read
// from a declarative YAML file instead of MySQL (see examples/ and the
// README). The file is validated as a whole at start-up; every error names
// the file, the line and the field.
package filedir

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// Directory implements registrar.Directory from a file. It is immutable
// after Load, hence safe for concurrent use.
type Directory struct {
	source   string
	accounts map[string]*registrar.Account   // by lower-case sip_realm
	caps     map[string]registrar.Capacities // by account_sid
	clients  map[string]registrar.Client     // by account_sid + "\x00" + lower-case username
	carriers []Carrier
	// sipDomain is the top-level sip_domain_name (system_information).
	sipDomain string
}

// Load reads and validates a config file.
func Load(path string) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, naming it name in errors.
func Parse(name string, data []byte) (*Directory, error) {
	p := &parser{file: name}
	// Validate everything even after a syntax-level problem in one row, so
	// that one run reports all the problems of the file.
	doc := p.parse(data)
	if doc == nil {
		return nil, p.err()
	}
	d := p.build(doc)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	d.source = name
	return d, nil
}

// Source is the file the directory was read from.
func (d *Directory) Source() string { return d.source }

// Counts returns how many accounts and clients the directory holds.
func (d *Directory) Counts() (accounts, clients, carriers int) {
	return len(d.accounts), len(d.clients), len(d.carriers)
}

// AccountByRealm implements registrar.Directory. Realms compare without
// case, as MySQL's default collation does.
func (d *Directory) AccountByRealm(_ context.Context, realm string) (*registrar.Account, error) {
	a, ok := d.accounts[strings.ToLower(realm)]
	if !ok {
		return nil, nil
	}
	cp := *a
	if a.Hook != nil {
		h := *a.Hook
		cp.Hook = &h
	}
	return &cp, nil
}

// Capacities implements registrar.Directory.
func (d *Directory) Capacities(_ context.Context, accountSID string) (registrar.Capacities, error) {
	return d.caps[accountSID], nil
}

// Client implements registrar.Directory. User names compare without case,
// as MySQL's default collation does.
func (d *Directory) Client(_ context.Context, accountSID, username string) (*registrar.Client, error) {
	c, ok := d.clients[clientKey(accountSID, username)]
	if !ok {
		return nil, nil
	}
	return &c, nil
}

// Carriers returns the voip_carriers with their sip_gateways, in file order.
func (d *Directory) Carriers() []Carrier {
	out := make([]Carrier, len(d.carriers))
	for i, c := range d.carriers {
		c.Gateways = append([]Gateway(nil), c.Gateways...)
		out[i] = c
	}
	return out
}

func clientKey(accountSID, username string) string {
	return accountSID + "\x00" + strings.ToLower(username)
}

// --- parsing with positions ---

// maxErrors bounds the report: past it, more lines add nothing.
const maxErrors = 20

type parser struct {
	file string
	errs []string
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, fmt.Sprintf("%s:%d: %s: %s", p.file, line, field, fmt.Sprintf(format, args...)))
	}
}

func (p *parser) err() error {
	return errors.New("config file: " + strings.Join(p.errs, "\n  "))
}

// pos is where a row and its fields are in the file.
type pos struct {
	label  string // e.g. accounts[2]
	line   int
	fields map[string]int
}

func (ps pos) at(field string) (int, string) {
	if l, ok := ps.fields[field]; ok {
		return l, ps.label + "." + field
	}
	return ps.line, ps.label + "." + field
}

type rows struct {
	webhooks []webhookRow
	wPos     []pos
	accounts []accountRow
	aPos     []pos
	clients  []clientRow
	cPos     []pos
	carriers []carrierRow
	vPos     []pos
	gateways []gatewayRow
	gPos     []pos

	sipDomain string
}

func (p *parser) parse(data []byte) *rows {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		p.errs = append(p.errs, p.file+": "+strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	r := &rows{}
	if root.Kind == 0 { // empty file
		return r
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		p.errorf(top.Line, "(top level)", "must be a mapping of table names to lists of rows")
		return r
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		switch key.Value {
		case "webhooks":
			r.webhooks, r.wPos = decodeTable[webhookRow](p, key.Value, val)
		case "accounts":
			r.accounts, r.aPos = decodeTable[accountRow](p, key.Value, val)
		case "clients":
			r.clients, r.cPos = decodeTable[clientRow](p, key.Value, val)
		case "voip_carriers":
			r.carriers, r.vPos = decodeTable[carrierRow](p, key.Value, val)
		case "sip_gateways":
			r.gateways, r.gPos = decodeTable[gatewayRow](p, key.Value, val)
		case "sip_domain_name":
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" || strings.TrimSpace(val.Value) == "" {
				p.errorf(val.Line, key.Value, "must be a domain name")
				continue
			}
			r.sipDomain = strings.TrimSpace(val.Value)
		default:
			p.errorf(key.Line, key.Value, "unknown table (want %s)", strings.Join(yamlKeys(reflect.TypeOf(fileDoc{})), ", "))
		}
	}
	return r
}

// decodeTable decodes a sequence of rows of type T, checking column names.
func decodeTable[T any](p *parser, table string, seq *yaml.Node) ([]T, []pos) {
	if seq.Kind == yaml.ScalarNode && seq.Tag == "!!null" {
		return nil, nil
	}
	if seq.Kind != yaml.SequenceNode {
		p.errorf(seq.Line, table, "must be a list of rows")
		return nil, nil
	}
	known := map[string]bool{}
	var zero T
	for _, k := range yamlKeys(reflect.TypeOf(zero)) {
		known[k] = true
	}
	var out []T
	var positions []pos
	for i, item := range seq.Content {
		ps := pos{label: fmt.Sprintf("%s[%d]", table, i), line: item.Line, fields: map[string]int{}}
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, ps.label, "must be a mapping of column: value")
			continue
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k := item.Content[j]
			if !known[k.Value] {
				p.errorf(k.Line, ps.label+"."+k.Value, "unknown column")
			}
			ps.fields[k.Value] = item.Content[j+1].Line
		}
		var row T
		if err := item.Decode(&row); err != nil {
			p.typeErrors(ps, err)
		}
		out = append(out, row)
		positions = append(positions, ps)
	}
	return out, positions
}

// typeErrors reformats yaml's "line N: cannot unmarshal ..." as file:N.
func (p *parser) typeErrors(ps pos, err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		p.errorf(ps.line, ps.label, "%v", err)
		return
	}
	for _, e := range te.Errors {
		var line int
		if n, _ := fmt.Sscanf(e, "line %d:", &line); n == 1 {
			field := ps.label
			names := make([]string, 0, len(ps.fields))
			for f := range ps.fields {
				names = append(names, f)
			}
			sort.Strings(names)
			for _, f := range names {
				if ps.fields[f] == line {
					field = ps.label + "." + f
					break
				}
			}
			_, msg, _ := strings.Cut(e, ": ")
			p.errorf(line, field, "%s", msg)
			continue
		}
		p.errorf(ps.line, ps.label, "%s", e)
	}
}

func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// --- validation and indexing ---

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func (p *parser) build(r *rows) *Directory {
	d := &Directory{
		accounts:  map[string]*registrar.Account{},
		caps:      map[string]registrar.Capacities{},
		clients:   map[string]registrar.Client{},
		sipDomain: r.sipDomain,
	}
	required := func(ps pos, field, value string) bool {
		if strings.TrimSpace(value) == "" {
			line, f := ps.at(field)
			p.errorf(line, f, "is required")
			return false
		}
		return true
	}
	unique := func(seen map[string]string, ps pos, field, value string) {
		if value == "" {
			return
		}
		line, f := ps.at(field)
		if prev, dup := seen[strings.ToLower(value)]; dup {
			p.errorf(line, f, "%q is already used by %s", value, prev)
			return
		}
		seen[strings.ToLower(value)] = ps.label
	}

	hooks := map[string]*registrar.Webhook{}
	seen := map[string]string{}
	for i, w := range r.webhooks {
		ps := r.wPos[i]
		required(ps, "webhook_sid", w.WebhookSID)
		unique(seen, ps, "webhook_sid", w.WebhookSID)
		if required(ps, "url", w.URL) {
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				line, f := ps.at("url")
				p.errorf(line, f, "must be an http:// or https:// URL, got %q", w.URL)
			}
		}
		method := strings.ToUpper(w.Method)
		if method == "" {
			method = "POST"
		}
		if method != "GET" && method != "POST" {
			line, f := ps.at("method")
			p.errorf(line, f, "must be GET or POST, got %q", w.Method)
		}
		hooks[w.WebhookSID] = &registrar.Webhook{URL: w.URL, Method: method, Username: w.Username, Password: w.Password}
	}

	accountSIDs := map[string]bool{}
	seen, realms := map[string]string{}, map[string]string{}
	for i, a := range r.accounts {
		ps := r.aPos[i]
		required(ps, "account_sid", a.AccountSID)
		unique(seen, ps, "account_sid", a.AccountSID)
		accountSIDs[a.AccountSID] = true
		if required(ps, "sip_realm", a.SIPRealm) {
			unique(realms, ps, "sip_realm", a.SIPRealm)
			if _, err := netip.ParseAddr(a.SIPRealm); err == nil {
				line, f := ps.at("sip_realm")
				p.errorf(line, f, "must be a domain name, not an IP address (REGISTERs to IP literals are refused)")
			}
		}
		acct := &registrar.Account{
			SID:                a.AccountSID,
			ServiceProviderSID: a.ServiceProviderSID,
			Realm:              a.SIPRealm,
			Active:             boolOr(a.IsActive, true),
			WebhookSecret:      a.WebhookSecret,
			DeviceToCallRatio:  5,
		}
		if a.DeviceToCallRatio != nil {
			acct.DeviceToCallRatio = *a.DeviceToCallRatio
			if *a.DeviceToCallRatio < 0 {
				line, f := ps.at("device_to_call_ratio")
				p.errorf(line, f, "must not be negative")
			}
		}
		if a.RegistrationHookSID != "" {
			h, ok := hooks[a.RegistrationHookSID]
			if !ok {
				line, f := ps.at("registration_hook_sid")
				p.errorf(line, f, "no webhook has webhook_sid %q", a.RegistrationHookSID)
			} else {
				acct.Hook = h
			}
		}
		var caps registrar.Capacities
		for category, q := range a.Capacities {
			line, f := ps.at("capacities")
			switch {
			case q < 0:
				p.errorf(line, f+"."+category, "must not be negative")
			case category == "voice_call_session":
				caps.VoiceCallSessions = q
			case category == "device":
				caps.Devices = q
			default:
				p.errorf(line, f+"."+category, "unknown product category (want voice_call_session or device)")
			}
		}
		d.accounts[strings.ToLower(a.SIPRealm)] = acct
		d.caps[a.AccountSID] = caps
	}

	seen = map[string]string{}
	for i, c := range r.clients {
		ps := r.cPos[i]
		unique(seen, ps, "client_sid", c.ClientSID)
		if required(ps, "account_sid", c.AccountSID) && !accountSIDs[c.AccountSID] {
			line, f := ps.at("account_sid")
			p.errorf(line, f, "no account has account_sid %q", c.AccountSID)
		}
		required(ps, "username", c.Username)
		if required(ps, "password", c.Password) && strings.HasPrefix(strings.TrimSpace(c.Password), "{") && !credcrypt.IsEncrypted(c.Password) {
			line, f := ps.at("password")
			p.errorf(line, f, `looks like JSON but is not an encrypted password {"iv": "<hex>", "content": "<hex>"}`)
		}
		key := clientKey(c.AccountSID, c.Username)
		if _, dup := d.clients[key]; dup {
			line, f := ps.at("username")
			p.errorf(line, f, "%q is already a client of account %s", c.Username, c.AccountSID)
		}
		d.clients[key] = registrar.Client{
			Username:                c.Username,
			Password:                c.Password,
			Active:                  boolOr(c.IsActive, true),
			AllowDirectAppCalling:   boolOr(c.AllowDirectAppCalling, true),
			AllowDirectQueueCalling: boolOr(c.AllowDirectQueueCalling, true),
			AllowDirectUserCalling:  boolOr(c.AllowDirectUserCalling, true),
		}
	}

	carrierIdx := map[string]int{}
	seen = map[string]string{}
	for i, c := range r.carriers {
		ps := r.vPos[i]
		required(ps, "voip_carrier_sid", c.VoipCarrierSID)
		unique(seen, ps, "voip_carrier_sid", c.VoipCarrierSID)
		required(ps, "name", c.Name)
		if c.AccountSID != "" && !accountSIDs[c.AccountSID] {
			line, f := ps.at("account_sid")
			p.errorf(line, f, "no account has account_sid %q", c.AccountSID)
		}
		trunk := c.TrunkType
		if trunk == "" {
			trunk = "static_ip"
		}
		if trunk != "static_ip" && trunk != "auth" && trunk != "reg" {
			line, f := ps.at("trunk_type")
			p.errorf(line, f, "must be static_ip, auth or reg, got %q", c.TrunkType)
		}
		if c.RequiresRegister {
			required(ps, "register_username", c.RegisterUsername)
			required(ps, "register_password", c.RegisterPassword)
		}
		carrierIdx[c.VoipCarrierSID] = len(d.carriers)
		d.carriers = append(d.carriers, Carrier{
			VoipCarrierSID: c.VoipCarrierSID, Name: c.Name, AccountSID: c.AccountSID,
			ServiceProviderSID: c.ServiceProviderSID, IsActive: boolOr(c.IsActive, true),
			RequiresRegister: c.RequiresRegister, RegisterUsername: c.RegisterUsername,
			RegisterPassword: c.RegisterPassword, RegisterSIPRealm: c.RegisterSIPRealm,
			RegisterFromUser: c.RegisterFromUser, RegisterFromDomain: c.RegisterFromDomain,
			RegisterPublicIPInContact: c.RegisterPublicIPInContact, OutboundSIPProxy: c.OutboundSIPProxy,
			RegisterFromAllSBCs: c.RegisterFromAllSBCs,
			TrunkType:           trunk,
		})
	}

	seen = map[string]string{}
	for i, g := range r.gateways {
		ps := r.gPos[i]
		required(ps, "sip_gateway_sid", g.SIPGatewaySID)
		unique(seen, ps, "sip_gateway_sid", g.SIPGatewaySID)
		required(ps, "ipv4", g.IPv4)
		idx, ok := carrierIdx[g.VoipCarrierSID]
		if required(ps, "voip_carrier_sid", g.VoipCarrierSID) && !ok {
			line, f := ps.at("voip_carrier_sid")
			p.errorf(line, f, "no carrier has voip_carrier_sid %q", g.VoipCarrierSID)
		}
		port := 0
		if g.Port != nil {
			port = *g.Port
			if port < 1 || port > 65535 {
				line, f := ps.at("port")
				p.errorf(line, f, "must be between 1 and 65535, got %d", port)
			}
		}
		proto := strings.ToLower(g.Protocol)
		if proto == "" {
			proto = "udp"
		}
		switch proto {
		case "udp", "tcp", "tls", "tls/srtp":
		default:
			line, f := ps.at("protocol")
			p.errorf(line, f, "must be udp, tcp, tls or tls/srtp, got %q", g.Protocol)
		}
		if ok {
			d.carriers[idx].Gateways = append(d.carriers[idx].Gateways, Gateway{
				SIPGatewaySID: g.SIPGatewaySID, VoipCarrierSID: g.VoipCarrierSID, IPv4: g.IPv4,
				Port: port, Protocol: proto, Inbound: g.Inbound, Outbound: g.Outbound,
				IsActive: boolOr(g.IsActive, true), SendOptionsPing: g.SendOptionsPing,
				UseSipsScheme: g.UseSipsScheme,
			})
		}
	}
	return d
}

// --- demo ---

// The demo configuration: one realm, one client with a plain password, no
// webhook. Its credentials are public, which is why demo mode listens on
// loopback unless told otherwise.
const (
	DemoRealm    = "demo.localhost"
	DemoUser     = "demo"
	DemoPassword = "demo1234"
)

//go:embed demo.yaml
var demoYAML []byte

// Demo returns the built-in demo directory.
func Demo() (*Directory, error) { return Parse("(built-in demo configuration)", demoYAML) }
