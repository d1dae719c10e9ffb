// Package config reads the service configuration from the environment.
//
// Variable names and defaults are those of jambonz's Node.js sbc-sip-sidecar
// (docs/configuration.md) plus a few of our own (SIP_LISTEN, SIP_PUBLIC_ADDRESS,
// WEBHOOK_TIMEOUT_MS ...). Every variable is parsed and validated at start-up
// so a typo stops the process with one line naming the variable.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MySQL holds one connection pool's settings.
type MySQL struct {
	Host            string
	Port            int
	User            string
	Password        string
	Database        string
	ConnectionLimit int
	// DialTimeout and Timeout (read/write) bound one call to a dead server
	// (MYSQL_DIAL_TIMEOUT_MS, MYSQL_TIMEOUT_MS).
	DialTimeout time.Duration
	Timeout     time.Duration
}

// Enabled reports whether the pool is configured.
func (m MySQL) Enabled() bool { return m.Host != "" }

// Redis holds the Redis connection settings (plain, Sentinel or TLS).
type Redis struct {
	Host     string
	Port     int
	Username string
	Password string

	Sentinels          []string
	SentinelMasterName string
	SentinelUsername   string
	SentinelPassword   string

	TLS         bool
	TLSCAFile   string
	TLSKeyFile  string
	TLSCertFile string

	// DialTimeout and Timeout (read/write) bound one call to a dead server
	// (REDIS_DIAL_TIMEOUT_MS, REDIS_TIMEOUT_MS).
	DialTimeout time.Duration
	Timeout     time.Duration
}

// Enabled reports whether Redis is configured.
func (r Redis) Enabled() bool { return r.Host != "" || len(r.Sentinels) > 0 }

// Drachtio holds the drachtio-server control connection settings.
type Drachtio struct {
	Host   string
	Port   int
	Secret string
	// TLS dials the control port with TLS (drachtio-server's tls-port);
	// TLSCAFile, when set, is the CA bundle that verifies its certificate
	// instead of the system roots.
	TLS       bool
	TLSCAFile string
}

// Enabled reports whether the drachtio front is selected.
func (d Drachtio) Enabled() bool { return d.Host != "" }

// Regbot holds the outbound registration settings.
type Regbot struct {
	DefaultExpires       int // seconds
	MinExpires           int // seconds
	FailureRetryInterval time.Duration
	// BackoffInitial is the first retry delay after a timeout, transport
	// error or 5xx without Retry-After; it doubles up to FailureRetryInterval.
	BackoffInitial time.Duration
	// MaxExpires caps the expiry asked for after a 423 Min-Expires (s).
	MaxExpires             int
	FailureThreshold       int
	RegisterResponseRemove []int
	BatchSize              int
	BatchSleep             time.Duration
	ContactUseIP           bool
	UserAgent              string
	StartDelayMax          time.Duration
	StatusInterval         time.Duration
	// AllSBCs: every instance registers every carrier itself
	// (JAMBONES_REGBOT_ALL_SBCS) instead of the leader alone.
	AllSBCs bool
}

// Stats holds the StatsD settings of the original (ENABLE_METRICS=1).
type Stats struct {
	Enabled    bool
	Host       string
	Port       int
	Protocol   string
	Prefix     string
	Tags       string
	SampleRate float64
	Telegraf   bool
}

// Security holds the REGISTER hardening settings (nonces, bans, limits).
type Security struct {
	// DigestAlgorithms are the algorithms offered in REGISTER challenges, one
	// WWW-Authenticate each, in order of preference (DIGEST_ALGORITHMS).
	DigestAlgorithms []string
	NonceSecret      string
	NonceTTL         time.Duration
	FailuresPerIP    int // 0 disables
	FailuresAoR      int // 0 disables
	FailureWindow    time.Duration
	BanFor           time.Duration
	Drop             bool // AUTH_BAN_ACTION=drop
	RatePerIP        int  // REGISTERs per second per IP, 0 disables
	RateBurst        int
	ScannerAgents    []string
	// MaxExpires caps a granted binding, seconds (REGISTER_MAX_EXPIRES);
	// MinExpires answers shorter requests 423, 0 = off (REGISTER_MIN_EXPIRES).
	MaxExpires int
	MinExpires int
}

// Events holds the registration events settings (docs/events.md).
type Events struct {
	// Enabled publishes events and sweeps expiries (REGISTRATION_EVENTS, on by default).
	Enabled bool
	// Refresh publishes refresh events too (REGISTRATION_EVENTS_REFRESH).
	Refresh bool
	// Queue bounds the events waiting to be published (REGISTRATION_EVENTS_QUEUE).
	Queue int
	// ExpirySweep is the period of the expiry sweep (REGISTRATION_EVENTS_EXPIRY_SWEEP_MS).
	ExpirySweep time.Duration
	// Webhook* configure the optional HTTP webhook (REGISTRATION_EVENTS_WEBHOOK_*).
	WebhookURL      string
	WebhookSecret   string
	WebhookBatch    int
	WebhookQueue    int
	WebhookFlush    time.Duration
	WebhookRetryMin time.Duration
	WebhookRetryMax time.Duration
}

// SIPLimits bound what peers can hold on the native front's TCP, TLS, WS
// and WSS listeners, and the size of any SIP message (docs/security.md).
type SIPLimits struct {
	MaxConnections      int
	MaxConnectionsPerIP int
	HandshakeTimeout    time.Duration
	IdleTimeout         time.Duration
	MaxMessageSize      int
	UDPStateTTL         time.Duration
	// UDPSockets is how many SO_REUSEPORT sockets serve each UDP listen
	// address, 0 = one per core (SIP_UDP_SOCKETS).
	UDPSockets int
	// UDPWorkers bounds the UDP REGISTER/OPTIONS handled at once
	// (SIP_UDP_WORKERS); UDPQueueWait is the longest one waits for a
	// worker before it is dropped (SIP_UDP_QUEUE_MS).
	UDPWorkers   int
	UDPQueueWait time.Duration
}

// Config is the whole service configuration.
type Config struct {
	LogLevel string

	SIPListen        []Listen
	SIPListenSet     bool // SIP_LISTEN was given (demo mode defaults to loopback otherwise)
	SIPPublicAddress string
	// SIPTLSCertFile and SIPTLSKeyFile hold the certificate of the tls and
	// wss listeners (PEM), reloaded on SIGHUP.
	SIPTLSCertFile string
	SIPTLSKeyFile  string
	SIPLimits      SIPLimits
	// SIPTLSCAFile is a PEM bundle trusted, besides the system roots, for
	// the certificates of carriers reached over TLS.
	SIPTLSCAFile string
	// HTTPPort serves /metrics, /health and /ready; 0 disables it.
	HTTPPort int
	// HTTPListen is the host:port of the HTTP server: HTTP_LISTEN, else
	// ":HTTP_PORT" (all interfaces, as before HTTP_LISTEN existed), else ""
	// (off).
	HTTPListen string
	// PProf adds net/http/pprof under /debug/pprof/ on the HTTP server,
	// answered to loopback clients only (profiling).
	PProf bool
	// LogSourceLimit is how many info lines per minute one source address
	// may cause (LOG_SOURCE_LIMIT); 0 disables the limit.
	LogSourceLimit int
	// WebhookMaxConcurrent bounds an account's registration webhook calls
	// in flight (WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT); 0 disables the bound.
	WebhookMaxConcurrent int

	// Standalone mode (no MySQL / no Redis).
	ConfigFile string // SIDECAR_CONFIG or --config: YAML directory used when MySQL is not configured
	StateFile  string // SIDECAR_STATE_FILE: the embedded store's file when Redis is not configured

	Drachtio   Drachtio
	MySQL      MySQL
	MySQLWrite MySQL
	Redis      Redis
	// BackendProbeInterval: how often a down Redis or MySQL is probed
	// (BACKEND_PROBE_INTERVAL_MS); calls needing it fail at once meanwhile.
	BackendProbeInterval time.Duration

	TimeSeriesHost string
	ClusterID      string
	Hosting        bool
	NetworkCIDRs   []netip.Prefix

	EncryptionSecret string
	LegacyCrypto     bool

	WebhookTimeout time.Duration
	// DirectoryCacheTTL: how long MySQL account/client lookups are cached (0: off).
	DirectoryCacheTTL time.Duration
	// DirectoryCacheStale: how long past its TTL a cached lookup is still
	// served while MySQL is down (0: never).
	DirectoryCacheStale time.Duration
	HTTPUserAgent       string
	ExpiresInterval     time.Duration
	CheckExpires        time.Duration
	SBCKeepAlive        time.Duration
	DeadSBC             time.Duration
	OptionsPingEvery    time.Duration
	OptionsPingTTL      time.Duration
	OptionsRemove       []int
	SocketPath          string
	Regbot              Regbot
	Stats               Stats
	Security            Security
	Events              Events
}

// Listen is one SIP listen address from SIP_LISTEN.
type Listen struct {
	Transport string // udp, tcp, tls, ws, wss
	Host      string
	Port      int
}

func (l Listen) String() string {
	return l.Transport + ":" + netHostPort(l.Host, l.Port)
}

func netHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// Getenv looks a variable up; os.LookupEnv fits.
type Getenv func(name string) (string, bool)

// DefaultListen is used when SIP_LISTEN is not set.
const DefaultListen = "udp:0.0.0.0:5060,tcp:0.0.0.0:5060"

// Defaults of SIP_UDP_WORKERS and SIP_UDP_QUEUE_MS (the native front's
// stateless UDP path; docs/performance.md, "Overload"). A request mostly
// waits on Redis, MySQL or a webhook: more handlers than those pools have
// connections only queue inside them, in no particular order, where a
// request can wait for seconds while later ones pass it. In the pool's
// queue they wait in order, and a full queue is refused 503. The wait
// bound is a safety net for a slow backend, not for CPU overload (the
// queue's bound handles that): a request waiting is not lost work, the
// client's retransmissions are absorbed while it waits and any answer
// within 32 s (Timer F) completes its transaction; one dropped is
// forgotten, and its next retransmission is served as a new request.
const (
	DefaultUDPWorkers   = 512
	DefaultUDPQueueWait = 2 * time.Second
)

// DefaultStateFile is the embedded store's file when SIDECAR_STATE_FILE is not set.
const DefaultStateFile = "./sbc-sip-sidecar.state"

// DemoListen is where demo mode listens when SIP_LISTEN is not set:
// loopback, because the demo credentials are public.
const DemoListen = "udp:127.0.0.1:5060,tcp:127.0.0.1:5060"

// Load parses and validates the configuration. The error names the variable.
func Load(getenv Getenv) (*Config, error) {
	r := &reader{getenv: getenv}
	c := &Config{}

	c.LogLevel = r.oneOf("JAMBONES_LOGLEVEL", "info", "debug", "info", "warn", "error")
	c.SIPListen = r.listen("SIP_LISTEN", DefaultListen)
	_, c.SIPListenSet = r.raw("SIP_LISTEN")
	c.ConfigFile = r.str("SIDECAR_CONFIG", "")
	c.StateFile = r.str("SIDECAR_STATE_FILE", DefaultStateFile)
	c.SIPPublicAddress = r.ip("SIP_PUBLIC_ADDRESS")
	c.SIPTLSCertFile = r.str("SIP_TLS_CERT_FILE", "")
	c.SIPTLSKeyFile = r.str("SIP_TLS_KEY_FILE", "")
	c.SIPLimits = SIPLimits{
		MaxConnections:      r.positive("SIP_MAX_CONNECTIONS", 10000),
		MaxConnectionsPerIP: r.positive("SIP_MAX_CONNECTIONS_PER_IP", 100),
		HandshakeTimeout:    r.millis("SIP_HANDSHAKE_TIMEOUT_MS", 10000),
		IdleTimeout:         r.seconds("SIP_IDLE_TIMEOUT", 60),
		MaxMessageSize:      r.integer("SIP_MAX_MESSAGE_SIZE", 65535, 1024, 1<<20),
		UDPStateTTL:         r.seconds("SIP_UDP_STATE_TTL", 30),
		UDPSockets:          r.integer("SIP_UDP_SOCKETS", 0, 0, 256),
		UDPWorkers:          r.integer("SIP_UDP_WORKERS", DefaultUDPWorkers, 1, 65536),
		UDPQueueWait:        r.millis("SIP_UDP_QUEUE_MS", int(DefaultUDPQueueWait/time.Millisecond)),
	}
	c.SIPTLSCAFile = r.str("SIP_TLS_CA_FILE", "")
	for _, l := range c.SIPListen {
		if l.Transport == "tls" || l.Transport == "wss" {
			if c.SIPTLSCertFile == "" {
				r.fail("SIP_TLS_CERT_FILE", "is required when SIP_LISTEN has a "+l.Transport+" entry")
			}
			if c.SIPTLSKeyFile == "" {
				r.fail("SIP_TLS_KEY_FILE", "is required when SIP_LISTEN has a "+l.Transport+" entry")
			}
			break
		}
	}
	c.HTTPPort = r.integer("HTTP_PORT", 0, 0, 65535)
	c.HTTPListen = r.hostPort("HTTP_LISTEN")
	if c.HTTPListen == "" && c.HTTPPort > 0 {
		c.HTTPListen = ":" + strconv.Itoa(c.HTTPPort) // all interfaces, IPv4 and IPv6, as before
	}
	c.PProf = r.boolean("PPROF")
	c.LogSourceLimit = r.integer("LOG_SOURCE_LIMIT", 20, 0, 1<<31-1)

	c.Drachtio = Drachtio{
		Host:      r.str("DRACHTIO_HOST", ""),
		Port:      r.port("DRACHTIO_PORT", 9022),
		Secret:    r.str("DRACHTIO_SECRET", ""),
		TLS:       r.boolean("DRACHTIO_TLS"),
		TLSCAFile: r.str("DRACHTIO_TLS_CA_FILE", ""),
	}
	if c.Drachtio.Host != "" && c.Drachtio.Secret == "" {
		r.fail("DRACHTIO_SECRET", "is required when DRACHTIO_HOST is set")
	}
	if c.Drachtio.TLSCAFile != "" && !c.Drachtio.TLS {
		r.fail("DRACHTIO_TLS_CA_FILE", "is set but DRACHTIO_TLS is off")
	}

	c.MySQL = MySQL{
		Host:            r.str("JAMBONES_MYSQL_HOST", ""),
		Port:            r.port("JAMBONES_MYSQL_PORT", 3306),
		User:            r.str("JAMBONES_MYSQL_USER", ""),
		Password:        r.str("JAMBONES_MYSQL_PASSWORD", ""),
		Database:        r.str("JAMBONES_MYSQL_DATABASE", ""),
		ConnectionLimit: r.positive("JAMBONES_MYSQL_CONNECTION_LIMIT", 10),
		DialTimeout:     r.millis("MYSQL_DIAL_TIMEOUT_MS", 1000),
		Timeout:         r.millis("MYSQL_TIMEOUT_MS", 3000),
	}
	if c.MySQL.Host != "" {
		r.require("JAMBONES_MYSQL_USER", c.MySQL.User, "JAMBONES_MYSQL_HOST")
		r.require("JAMBONES_MYSQL_DATABASE", c.MySQL.Database, "JAMBONES_MYSQL_HOST")
	}
	c.MySQLWrite = MySQL{
		Host:            r.str("JAMBONES_MYSQL_WRITE_HOST", ""),
		Port:            r.port("JAMBONES_MYSQL_WRITE_PORT", 3306),
		User:            r.str("JAMBONES_MYSQL_WRITE_USER", ""),
		Password:        r.str("JAMBONES_MYSQL_WRITE_PASSWORD", ""),
		Database:        r.str("JAMBONES_MYSQL_WRITE_DATABASE", ""),
		ConnectionLimit: c.MySQL.ConnectionLimit,
		DialTimeout:     c.MySQL.DialTimeout,
		Timeout:         c.MySQL.Timeout,
	}
	// The original uses the write pool only when all of its variables are set.
	if c.MySQLWrite.Host == "" || c.MySQLWrite.User == "" || c.MySQLWrite.Password == "" || c.MySQLWrite.Database == "" {
		c.MySQLWrite = MySQL{}
	}

	c.Redis = Redis{
		Host:               r.str("JAMBONES_REDIS_HOST", ""),
		Port:               r.port("JAMBONES_REDIS_PORT", 6379),
		Username:           r.str("JAMBONES_REDIS_USERNAME", ""),
		Password:           r.str("JAMBONES_REDIS_PASSWORD", ""),
		Sentinels:          r.hostPorts("JAMBONES_REDIS_SENTINELS"),
		SentinelMasterName: r.str("JAMBONES_REDIS_SENTINEL_MASTER_NAME", ""),
		SentinelUsername:   r.str("JAMBONES_REDIS_SENTINEL_USERNAME", ""),
		SentinelPassword:   r.str("JAMBONES_REDIS_SENTINEL_PASSWORD", ""),
		TLS:                r.boolean("ENABLE_JAMBONES_REDIS_TLS"),
		TLSCAFile:          r.str("JAMBONES_REDIS_TLS_CA_FILE", ""),
		TLSKeyFile:         r.str("JAMBONES_REDIS_TLS_KEY_FILE", ""),
		TLSCertFile:        r.str("JAMBONES_REDIS_TLS_CERT_FILE", ""),
		DialTimeout:        r.millis("REDIS_DIAL_TIMEOUT_MS", 500),
		Timeout:            r.millis("REDIS_TIMEOUT_MS", 1000),
	}
	if len(c.Redis.Sentinels) > 0 && c.Redis.SentinelMasterName == "" {
		r.fail("JAMBONES_REDIS_SENTINEL_MASTER_NAME", "is required when JAMBONES_REDIS_SENTINELS is set")
	}

	c.BackendProbeInterval = r.millis("BACKEND_PROBE_INTERVAL_MS", 250)

	c.TimeSeriesHost = r.str("JAMBONES_TIME_SERIES_HOST", "")
	c.ClusterID = r.str("JAMBONES_CLUSTER_ID", "default")
	c.Hosting = r.boolean("JAMBONES_HOSTING")
	c.NetworkCIDRs = r.cidrs("JAMBONES_NETWORK_CIDR", "192.168.0.0/24,172.16.0.0/16,10.0.0.0/8")

	c.EncryptionSecret = r.str("ENCRYPTION_SECRET", "")
	if c.EncryptionSecret == "" {
		c.EncryptionSecret = r.str("JWT_SECRET", "")
	}
	c.LegacyCrypto = r.boolean("LEGACY_CRYPTO")

	c.WebhookTimeout = r.millis("WEBHOOK_TIMEOUT_MS", 5000)
	c.WebhookMaxConcurrent = r.integer("WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT", 50, 0, 1<<31-1)
	c.DirectoryCacheTTL = time.Duration(r.integer("DIRECTORY_CACHE_TTL_MS", 5000, 0, 1<<31-1)) * time.Millisecond
	c.DirectoryCacheStale = time.Duration(r.integer("DIRECTORY_CACHE_STALE_MS", 3600000, 0, 1<<31-1)) * time.Millisecond
	c.HTTPUserAgent = r.str("JAMBONES_HTTP_USER_AGENT_HEADER", "")
	c.ExpiresInterval = r.millis("EXPIRES_INTERVAL", 60000)
	c.CheckExpires = r.millis("CHECK_EXPIRES_INTERVAL", 20000)
	c.SBCKeepAlive = r.millis("SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND", 900000)
	c.DeadSBC = r.seconds("DEAD_SBC_IN_SECOND", 3600)
	c.OptionsPingEvery = r.seconds("SEND_OPTIONS_PING_INTERVAL", 60)
	c.OptionsPingTTL = r.seconds("OPTIONS_PING_TTL", 300)
	c.OptionsRemove = r.codes("OPTIONS_RESPONSE_REMOVE")
	c.SocketPath = r.str("SBC_SOCKET_PATH", "/tmp/sbc-sip-sidecar.sock")

	c.Regbot = Regbot{
		DefaultExpires:         r.positive("JAMBONES_REGBOT_DEFAULT_EXPIRES_INTERVAL", 3600),
		MinExpires:             r.positive("JAMBONES_REGBOT_MIN_EXPIRES_INTERVAL", 30),
		FailureRetryInterval:   r.seconds("JAMBONES_REGBOT_FAILURE_RETRY_INTERVAL", 300),
		BackoffInitial:         r.millis("JAMBONES_REGBOT_BACKOFF_INITIAL_MS", 5000),
		MaxExpires:             r.positive("JAMBONES_REGBOT_MAX_EXPIRES_INTERVAL", 86400),
		FailureThreshold:       r.positive("JAMBONES_REGBOT_REGISTER_FAILURE_THRESHOLD", 3),
		RegisterResponseRemove: r.codes("REGISTER_RESPONSE_REMOVE"),
		BatchSize:              r.positive("JAMBONES_REGBOT_BATCH_SIZE", 10),
		BatchSleep:             r.millis("JAMBONES_REGBOT_BATCH_SLEEP_MS", 250),
		ContactUseIP:           r.boolean("JAMBONES_REGBOT_CONTACT_USE_IP"),
		UserAgent:              r.str("JAMBONES_REGBOT_USER_AGENT", "Jambonz "+Version),
		StartDelayMax:          r.millis("JAMBONES_REGBOT_START_DELAY_MAX_MS", 15000),
		StatusInterval:         r.millis("JAMBONES_REGBOT_STATUS_INTERVAL_MS", 60000),
		AllSBCs:                r.boolean("JAMBONES_REGBOT_ALL_SBCS"),
	}

	c.Stats = Stats{
		Enabled:    r.str("ENABLE_METRICS", "") == "1",
		Host:       r.str("STATS_HOST", "127.0.0.1"),
		Port:       r.port("STATS_PORT", 8125),
		Protocol:   r.oneOf("STATS_PROTOCOL", "udp", "udp", "tcp"),
		Prefix:     r.str("STATS_PREFIX", ""),
		Tags:       r.str("STATS_TAGS", ""),
		SampleRate: r.fraction("STATS_SAMPLE_RATE", 1),
		Telegraf:   r.boolean("STATS_TELEGRAF"),
	}

	c.Security = Security{
		DigestAlgorithms: r.digestAlgorithms("DIGEST_ALGORITHMS"),
		NonceSecret:      r.str("NONCE_SECRET", ""),
		NonceTTL:         r.seconds("NONCE_TTL", 300),
		FailuresPerIP:    r.integer("AUTH_FAILURE_LIMIT", 10, 0, 1<<31-1),
		FailuresAoR:      r.integer("AUTH_FAILURE_AOR_LIMIT", 20, 0, 1<<31-1),
		FailureWindow:    r.seconds("AUTH_FAILURE_WINDOW", 60),
		BanFor:           r.seconds("AUTH_BAN_DURATION", 600),
		Drop:             r.oneOf("AUTH_BAN_ACTION", "reject", "reject", "drop") == "drop",
		RatePerIP:        r.integer("SIP_RATE_LIMIT", 50, 0, 1<<31-1),
		RateBurst:        r.positive("SIP_RATE_BURST", 100),
		ScannerAgents:    r.list("SCANNER_USER_AGENTS"),
		MaxExpires:       r.integer("REGISTER_MAX_EXPIRES", 3600, 1, 1<<31-1),
		MinExpires:       r.integer("REGISTER_MIN_EXPIRES", 0, 0, 1<<31-1),
	}
	c.Events = Events{
		Enabled:         r.oneOf("REGISTRATION_EVENTS", "on", "on", "off") == "on",
		Refresh:         r.boolean("REGISTRATION_EVENTS_REFRESH"),
		Queue:           r.positive("REGISTRATION_EVENTS_QUEUE", 10000),
		ExpirySweep:     r.millis("REGISTRATION_EVENTS_EXPIRY_SWEEP_MS", 1000),
		WebhookURL:      r.httpURL("REGISTRATION_EVENTS_WEBHOOK_URL"),
		WebhookSecret:   r.str("REGISTRATION_EVENTS_WEBHOOK_SECRET", ""),
		WebhookBatch:    r.positive("REGISTRATION_EVENTS_WEBHOOK_BATCH", 100),
		WebhookQueue:    r.positive("REGISTRATION_EVENTS_WEBHOOK_QUEUE", 10000),
		WebhookFlush:    r.millis("REGISTRATION_EVENTS_WEBHOOK_FLUSH_MS", 1000),
		WebhookRetryMin: r.millis("REGISTRATION_EVENTS_WEBHOOK_RETRY_MS", 500),
		WebhookRetryMax: r.millis("REGISTRATION_EVENTS_WEBHOOK_RETRY_MAX_MS", 30000),
	}
	if c.Events.WebhookRetryMax < c.Events.WebhookRetryMin {
		r.fail("REGISTRATION_EVENTS_WEBHOOK_RETRY_MAX_MS", "must not be below REGISTRATION_EVENTS_WEBHOOK_RETRY_MS")
	}
	if c.Events.WebhookURL != "" && !c.Events.Enabled {
		r.fail("REGISTRATION_EVENTS_WEBHOOK_URL", "is set but REGISTRATION_EVENTS is off")
	}

	if c.Security.MinExpires > c.Security.MaxExpires {
		r.fail("REGISTER_MIN_EXPIRES", "must not exceed REGISTER_MAX_EXPIRES")
	}

	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// digestAlgorithms reads a list of digest algorithms (MD5, SHA-256), default
// MD5 alone: several challenges lock out common clients (docs/security.md).
func (r *reader) digestAlgorithms(name string) []string {
	v := r.list(name)
	if len(v) == 0 {
		return []string{"MD5"}
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(v))
	for _, a := range v {
		a = strings.ToUpper(a)
		if a != "MD5" && a != "SHA-256" {
			r.fail(name, fmt.Sprintf("must list MD5 and/or SHA-256, got %q", a))
			return []string{"MD5"}
		}
		if seen[a] {
			r.fail(name, fmt.Sprintf("lists %s twice", a))
			return []string{"MD5"}
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

func (r *reader) list(name string) []string {
	v, ok := r.raw(name)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Version is the service version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// reader parses variables and keeps the first error.
type reader struct {
	getenv Getenv
	err    error
}

func (r *reader) fail(name, msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("config: %s %s", name, msg)
	}
}

func (r *reader) raw(name string) (string, bool) {
	v, ok := r.getenv(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (r *reader) str(name, def string) string {
	if v, ok := r.raw(name); ok {
		return v
	}
	return def
}

func (r *reader) require(name, value, because string) {
	if value == "" {
		r.fail(name, "is required when "+because+" is set")
	}
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	v = strings.ToLower(v)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, "|"), v))
	return def
}

func (r *reader) integer(name string, def, min, max int) int {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, fmt.Sprintf("must be an integer between %d and %d, got %q", min, max, v))
		return def
	}
	return n
}

func (r *reader) port(name string, def int) int     { return r.integer(name, def, 1, 65535) }
func (r *reader) positive(name string, def int) int { return r.integer(name, def, 1, 1<<31-1) }

func (r *reader) millis(name string, def int) time.Duration {
	return time.Duration(r.integer(name, def, 1, 1<<31-1)) * time.Millisecond
}

func (r *reader) seconds(name string, def int) time.Duration {
	return time.Duration(r.integer(name, def, 1, 1<<31-1)) * time.Second
}

func (r *reader) fraction(name string, def float64) float64 {
	v, ok := r.raw(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 1 {
		r.fail(name, fmt.Sprintf("must be a number in (0,1], got %q", v))
		return def
	}
	return f
}

// boolean follows the original: any non-empty value other than 0/false is true.
func (r *reader) boolean(name string) bool {
	v, ok := r.raw(name)
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "0", "false", "no", "off":
		return false
	}
	return true
}

// httpURL reads an http(s) URL ("" when unset).
func (r *reader) httpURL(name string) string {
	v, ok := r.raw(name)
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail(name, fmt.Sprintf("must be an http:// or https:// URL, got %q", v))
		return ""
	}
	return v
}

func (r *reader) ip(name string) string {
	v, ok := r.raw(name)
	if !ok {
		return ""
	}
	if _, err := netip.ParseAddr(v); err != nil {
		r.fail(name, fmt.Sprintf("must be an IP address, got %q", v))
		return ""
	}
	return v
}

func (r *reader) codes(name string) []int {
	v, ok := r.raw(name)
	if !ok {
		return nil
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 699 {
			r.fail(name, fmt.Sprintf("must be a comma-separated list of SIP status codes, got %q", s))
			return nil
		}
		out = append(out, n)
	}
	return out
}

// hostPort reads one listen address, host:port ([v6]:port; an empty host
// means all interfaces).
func (r *reader) hostPort(name string) string {
	v, ok := r.raw(name)
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 1 || p > 65535 || strings.ContainsAny(host, " /") {
		r.fail(name, fmt.Sprintf("must be host:port (e.g. 127.0.0.1:3000), got %q", v))
		return ""
	}
	return net.JoinHostPort(host, port)
}

func (r *reader) hostPorts(name string) []string {
	v, ok := r.raw(name)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		host, port, found := strings.Cut(s, ":")
		if !found {
			port = "26379"
		}
		if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
			r.fail(name, fmt.Sprintf("must be a comma-separated list of host:port, got %q", s))
			return nil
		}
		out = append(out, host+":"+port)
	}
	return out
}

func (r *reader) cidrs(name, def string) []netip.Prefix {
	v := r.str(name, def)
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			r.fail(name, fmt.Sprintf("must be a comma-separated list of CIDRs, got %q", s))
			return nil
		}
		out = append(out, p.Masked())
	}
	return out
}

func (r *reader) listen(name, def string) []Listen {
	v := r.str(name, def)
	out, err := ParseListen(v)
	if err != nil {
		r.fail(name, err.Error())
	}
	return out
}

// ParseListen parses a comma-separated list of transport:host:port.
func ParseListen(v string) ([]Listen, error) {
	var out []Listen
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		transport, hostport, ok := strings.Cut(s, ":")
		transport = strings.ToLower(transport)
		switch transport {
		case "udp", "tcp", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("has an unknown transport in %q (want udp|tcp|tls|ws|wss:host:port)", s)
		}
		i := strings.LastIndexByte(hostport, ':')
		if !ok || i < 0 {
			return nil, fmt.Errorf("entry %q must be transport:host:port", s)
		}
		host := strings.Trim(hostport[:i], "[]")
		port, err := strconv.Atoi(hostport[i+1:])
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("entry %q has a bad port", s)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("entry %q must use an IP address as host", s)
		}
		out = append(out, Listen{Transport: transport, Host: host, Port: port})
	}
	if len(out) == 0 {
		return nil, errors.New("must list at least one transport:host:port")
	}
	return out, nil
}

// InNetwork reports whether ip is inside one of the private CIDRs.
func (c *Config) InNetwork(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.NetworkCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
