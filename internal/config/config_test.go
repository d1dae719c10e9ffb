package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Getenv {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func mustLoad(t *testing.T, m map[string]string) *Config {
	t.Helper()
	c, err := Load(env(m))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoad_Defaults(t *testing.T) {
	c := mustLoad(t, nil)
	checks := []struct {
		name      string
		got, want any
	}{
		{"LogLevel", c.LogLevel, "info"},
		{"SIPListen", c.SIPListen, []Listen{{"udp", "0.0.0.0", 5060}, {"tcp", "0.0.0.0", 5060}}},
		{"SIPPublicAddress", c.SIPPublicAddress, ""},
		{"Drachtio", c.Drachtio, Drachtio{Port: 9022}},
		{"Drachtio.Enabled", c.Drachtio.Enabled(), false},
		{"MySQL", c.MySQL, MySQL{Port: 3306, ConnectionLimit: 10, DialTimeout: time.Second, Timeout: 3 * time.Second}},
		{"MySQL.Enabled", c.MySQL.Enabled(), false},
		{"MySQLWrite", c.MySQLWrite, MySQL{}},
		{"Redis.Port", c.Redis.Port, 6379},
		{"Redis.Enabled", c.Redis.Enabled(), false},
		{"Redis.TLS", c.Redis.TLS, false},
		{"Redis.DialTimeout", c.Redis.DialTimeout, 500 * time.Millisecond},
		{"Redis.Timeout", c.Redis.Timeout, time.Second},
		{"BackendProbeInterval", c.BackendProbeInterval, 250 * time.Millisecond},
		{"ClusterID", c.ClusterID, "default"},
		{"Hosting", c.Hosting, false},
		{"NetworkCIDRs", c.NetworkCIDRs, []netip.Prefix{
			netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("172.16.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")}},
		{"EncryptionSecret", c.EncryptionSecret, ""},
		{"LegacyCrypto", c.LegacyCrypto, false},
		{"WebhookTimeout", c.WebhookTimeout, 5 * time.Second},
		{"HTTPUserAgent", c.HTTPUserAgent, ""},
		{"ExpiresInterval", c.ExpiresInterval, 60 * time.Second},
		{"CheckExpires", c.CheckExpires, 20 * time.Second},
		{"SBCKeepAlive", c.SBCKeepAlive, 900 * time.Second},
		{"DeadSBC", c.DeadSBC, time.Hour},
		{"OptionsPingEvery", c.OptionsPingEvery, time.Minute},
		{"OptionsPingTTL", c.OptionsPingTTL, 5 * time.Minute},
		{"OptionsRemove", c.OptionsRemove, []int(nil)},
		{"SocketPath", c.SocketPath, "/tmp/sbc-sip-sidecar.sock"},
		{"Regbot.DefaultExpires", c.Regbot.DefaultExpires, 3600},
		{"Regbot.MinExpires", c.Regbot.MinExpires, 30},
		{"Regbot.FailureRetryInterval", c.Regbot.FailureRetryInterval, 300 * time.Second},
		{"Regbot.FailureThreshold", c.Regbot.FailureThreshold, 3},
		{"Regbot.RegisterResponseRemove", c.Regbot.RegisterResponseRemove, []int(nil)},
		{"Regbot.BatchSize", c.Regbot.BatchSize, 10},
		{"Regbot.BatchSleep", c.Regbot.BatchSleep, 250 * time.Millisecond},
		{"Regbot.ContactUseIP", c.Regbot.ContactUseIP, false},
		{"Regbot.UserAgent", c.Regbot.UserAgent, "Jambonz " + Version},
		{"Stats.Enabled", c.Stats.Enabled, false},
		{"Stats.Host", c.Stats.Host, "127.0.0.1"},
		{"Stats.Port", c.Stats.Port, 8125},
		{"Stats.Protocol", c.Stats.Protocol, "udp"},
		{"Stats.SampleRate", c.Stats.SampleRate, 1.0},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoad_ValuesParsed(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"JAMBONES_LOGLEVEL":                   "DEBUG",
		"SIP_LISTEN":                          "udp:10.0.0.1:5060, tcp:[::1]:5070",
		"SIP_PUBLIC_ADDRESS":                  "3.1.2.3",
		"DRACHTIO_HOST":                       "127.0.0.1",
		"DRACHTIO_PORT":                       "9023",
		"DRACHTIO_SECRET":                     "cymru",
		"JAMBONES_MYSQL_HOST":                 "db",
		"JAMBONES_MYSQL_USER":                 "admin",
		"JAMBONES_MYSQL_PASSWORD":             "pw",
		"JAMBONES_MYSQL_DATABASE":             "jambones",
		"JAMBONES_MYSQL_CONNECTION_LIMIT":     "20",
		"JAMBONES_REDIS_SENTINELS":            "s1:26379, s2:26380,s3",
		"JAMBONES_REDIS_SENTINEL_MASTER_NAME": "mymaster",
		"ENABLE_JAMBONES_REDIS_TLS":           "1",
		"JAMBONES_CLUSTER_ID":                 "c1",
		"JAMBONES_HOSTING":                    "yes",
		"JAMBONES_NETWORK_CIDR":               "10.1.2.3/8",
		"JWT_SECRET":                          "jwt",
		"LEGACY_CRYPTO":                       "true",
		"EXPIRES_INTERVAL":                    "1000",
		"DEAD_SBC_IN_SECOND":                  "10",
		"OPTIONS_RESPONSE_REMOVE":             "404, 503,",
		"REGISTER_RESPONSE_REMOVE":            "403",
		"STATS_PROTOCOL":                      "TCP",
		"STATS_SAMPLE_RATE":                   "0.5",
		"ENABLE_METRICS":                      "1",
	})
	checks := []struct {
		name      string
		got, want any
	}{
		{"LogLevel", c.LogLevel, "debug"},
		{"SIPListen", c.SIPListen, []Listen{{"udp", "10.0.0.1", 5060}, {"tcp", "::1", 5070}}},
		{"SIPPublicAddress", c.SIPPublicAddress, "3.1.2.3"},
		{"Drachtio", c.Drachtio, Drachtio{Host: "127.0.0.1", Port: 9023, Secret: "cymru"}},
		{"MySQL", c.MySQL, MySQL{Host: "db", Port: 3306, User: "admin", Password: "pw", Database: "jambones", ConnectionLimit: 20,
			DialTimeout: time.Second, Timeout: 3 * time.Second}},
		{"Redis.Sentinels", c.Redis.Sentinels, []string{"s1:26379", "s2:26380", "s3:26379"}},
		{"Redis.Enabled", c.Redis.Enabled(), true},
		{"Redis.TLS", c.Redis.TLS, true},
		{"ClusterID", c.ClusterID, "c1"},
		{"Hosting", c.Hosting, true},
		{"NetworkCIDRs", c.NetworkCIDRs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{"EncryptionSecret (JWT_SECRET fallback)", c.EncryptionSecret, "jwt"},
		{"LegacyCrypto", c.LegacyCrypto, true},
		{"ExpiresInterval", c.ExpiresInterval, time.Second},
		{"DeadSBC", c.DeadSBC, 10 * time.Second},
		{"OptionsRemove", c.OptionsRemove, []int{404, 503}},
		{"Regbot.RegisterResponseRemove", c.Regbot.RegisterResponseRemove, []int{403}},
		{"Stats.Protocol", c.Stats.Protocol, "tcp"},
		{"Stats.SampleRate", c.Stats.SampleRate, 0.5},
		{"Stats.Enabled", c.Stats.Enabled, true},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoad_EncryptionSecretPreferredOverJWT(t *testing.T) {
	c := mustLoad(t, map[string]string{"ENCRYPTION_SECRET": "enc", "JWT_SECRET": "jwt"})
	if c.EncryptionSecret != "enc" {
		t.Fatalf("EncryptionSecret = %q", c.EncryptionSecret)
	}
}

func TestLoad_Booleans(t *testing.T) {
	for v, want := range map[string]bool{
		"1": true, "true": true, "yes": true, "anything": true, "TRUE": true,
		"0": false, "false": false, "FALSE": false, "no": false, "off": false, "": false, "  ": false,
	} {
		c := mustLoad(t, map[string]string{"JAMBONES_HOSTING": v})
		if c.Hosting != want {
			t.Errorf("JAMBONES_HOSTING=%q: Hosting = %v, want %v", v, c.Hosting, want)
		}
	}
}

func TestLoad_RegisterExpiresBounds(t *testing.T) {
	if c := mustLoad(t, nil); c.Security.MaxExpires != 3600 || c.Security.MinExpires != 0 {
		t.Errorf("defaults max %d min %d, want 3600 and 0", c.Security.MaxExpires, c.Security.MinExpires)
	}
	c := mustLoad(t, map[string]string{"REGISTER_MAX_EXPIRES": "600", "REGISTER_MIN_EXPIRES": "60"})
	if c.Security.MaxExpires != 600 || c.Security.MinExpires != 60 {
		t.Errorf("max %d min %d, want 600 and 60", c.Security.MaxExpires, c.Security.MinExpires)
	}
}

func TestLoad_Events(t *testing.T) {
	c := mustLoad(t, nil)
	want := Events{Enabled: true, Queue: 10000, ExpirySweep: time.Second, WebhookBatch: 100, WebhookQueue: 10000,
		WebhookFlush: time.Second, WebhookRetryMin: 500 * time.Millisecond, WebhookRetryMax: 30 * time.Second}
	if c.Events != want {
		t.Errorf("defaults %+v, want %+v", c.Events, want)
	}
	c = mustLoad(t, map[string]string{"REGISTRATION_EVENTS_REFRESH": "1", "REGISTRATION_EVENTS_EXPIRY_SWEEP_MS": "250",
		"REGISTRATION_EVENTS_WEBHOOK_URL": "https://crm.example.com/sip", "REGISTRATION_EVENTS_WEBHOOK_SECRET": "s"})
	if !c.Events.Refresh || c.Events.ExpirySweep != 250*time.Millisecond || c.Events.WebhookURL != "https://crm.example.com/sip" || c.Events.WebhookSecret != "s" {
		t.Errorf("parsed %+v", c.Events)
	}
	if c := mustLoad(t, map[string]string{"REGISTRATION_EVENTS": "OFF"}); c.Events.Enabled {
		t.Error("REGISTRATION_EVENTS=OFF left events on")
	}
}

func TestLoad_EmptyValueMeansDefault(t *testing.T) {
	c := mustLoad(t, map[string]string{"JAMBONES_REDIS_PORT": "", "JAMBONES_CLUSTER_ID": "  ", "SIP_LISTEN": ""})
	if c.Redis.Port != 6379 || c.ClusterID != "default" || len(c.SIPListen) != 2 {
		t.Fatalf("empty values not defaulted: port=%d cluster=%q listen=%v", c.Redis.Port, c.ClusterID, c.SIPListen)
	}
}

func TestLoad_MalformedValueNamesVariable(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		wantV string // the variable the error must name
	}{
		{"log level", map[string]string{"JAMBONES_LOGLEVEL": "verbose"}, "JAMBONES_LOGLEVEL"},
		{"port not a number", map[string]string{"JAMBONES_REDIS_PORT": "redis"}, "JAMBONES_REDIS_PORT"},
		{"port zero", map[string]string{"JAMBONES_MYSQL_PORT": "0"}, "JAMBONES_MYSQL_PORT"},
		{"port too large", map[string]string{"DRACHTIO_PORT": "70000"}, "DRACHTIO_PORT"},
		{"negative port", map[string]string{"STATS_PORT": "-1"}, "STATS_PORT"},
		{"write port", map[string]string{"JAMBONES_MYSQL_WRITE_PORT": "x"}, "JAMBONES_MYSQL_WRITE_PORT"},
		{"positive int zero", map[string]string{"JAMBONES_MYSQL_CONNECTION_LIMIT": "0"}, "JAMBONES_MYSQL_CONNECTION_LIMIT"},
		{"positive int float", map[string]string{"JAMBONES_REGBOT_BATCH_SIZE": "1.5"}, "JAMBONES_REGBOT_BATCH_SIZE"},
		{"threshold negative", map[string]string{"JAMBONES_REGBOT_REGISTER_FAILURE_THRESHOLD": "-3"}, "JAMBONES_REGBOT_REGISTER_FAILURE_THRESHOLD"},
		{"millis with unit", map[string]string{"EXPIRES_INTERVAL": "60s"}, "EXPIRES_INTERVAL"},
		{"millis overflow", map[string]string{"CHECK_EXPIRES_INTERVAL": "99999999999999999999"}, "CHECK_EXPIRES_INTERVAL"},
		{"seconds", map[string]string{"OPTIONS_PING_TTL": "five"}, "OPTIONS_PING_TTL"},
		{"keep alive", map[string]string{"SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND": "0"}, "SBC_PUBLIC_ADDRESS_KEEP_ALIVE_IN_MILISECOND"},
		{"webhook timeout", map[string]string{"WEBHOOK_TIMEOUT_MS": "abc"}, "WEBHOOK_TIMEOUT_MS"},
		{"sample rate above 1", map[string]string{"STATS_SAMPLE_RATE": "2"}, "STATS_SAMPLE_RATE"},
		{"sample rate zero", map[string]string{"STATS_SAMPLE_RATE": "0"}, "STATS_SAMPLE_RATE"},
		{"sample rate word", map[string]string{"STATS_SAMPLE_RATE": "half"}, "STATS_SAMPLE_RATE"},
		{"stats protocol", map[string]string{"STATS_PROTOCOL": "http"}, "STATS_PROTOCOL"},
		{"public address hostname", map[string]string{"SIP_PUBLIC_ADDRESS": "sbc.example.com"}, "SIP_PUBLIC_ADDRESS"},
		{"status code list", map[string]string{"OPTIONS_RESPONSE_REMOVE": "404,abc"}, "OPTIONS_RESPONSE_REMOVE"},
		{"status code out of range", map[string]string{"REGISTER_RESPONSE_REMOVE": "99"}, "REGISTER_RESPONSE_REMOVE"},
		{"sentinel bad port", map[string]string{"JAMBONES_REDIS_SENTINELS": "s1:x", "JAMBONES_REDIS_SENTINEL_MASTER_NAME": "m"}, "JAMBONES_REDIS_SENTINELS"},
		{"sentinel empty host", map[string]string{"JAMBONES_REDIS_SENTINELS": ":26379", "JAMBONES_REDIS_SENTINEL_MASTER_NAME": "m"}, "JAMBONES_REDIS_SENTINELS"},
		{"cidr", map[string]string{"JAMBONES_NETWORK_CIDR": "10.0.0.0/33"}, "JAMBONES_NETWORK_CIDR"},
		{"cidr without mask", map[string]string{"JAMBONES_NETWORK_CIDR": "10.0.0.0"}, "JAMBONES_NETWORK_CIDR"},
		{"sip listen", map[string]string{"SIP_LISTEN": "sctp:0.0.0.0:5060"}, "SIP_LISTEN"},
		{"drachtio host without secret", map[string]string{"DRACHTIO_HOST": "127.0.0.1"}, "DRACHTIO_SECRET"},
		{"drachtio CA file with TLS off", map[string]string{"DRACHTIO_HOST": "127.0.0.1", "DRACHTIO_SECRET": "s", "DRACHTIO_TLS_CA_FILE": "/ca.pem"}, "DRACHTIO_TLS_CA_FILE"},
		{"sentinels without master name", map[string]string{"JAMBONES_REDIS_SENTINELS": "s1:26379"}, "JAMBONES_REDIS_SENTINEL_MASTER_NAME"},
		{"mysql host without user", map[string]string{"JAMBONES_MYSQL_HOST": "db", "JAMBONES_MYSQL_DATABASE": "d"}, "JAMBONES_MYSQL_USER"},
		{"mysql host without database", map[string]string{"JAMBONES_MYSQL_HOST": "db", "JAMBONES_MYSQL_USER": "u"}, "JAMBONES_MYSQL_DATABASE"},
		{"max expires zero", map[string]string{"REGISTER_MAX_EXPIRES": "0"}, "REGISTER_MAX_EXPIRES"},
		{"min expires above max", map[string]string{"REGISTER_MAX_EXPIRES": "60", "REGISTER_MIN_EXPIRES": "61"}, "REGISTER_MIN_EXPIRES"},
		{"events neither on nor off", map[string]string{"REGISTRATION_EVENTS": "maybe"}, "REGISTRATION_EVENTS"},
		{"events webhook not http", map[string]string{"REGISTRATION_EVENTS_WEBHOOK_URL": "ftp://x/events"}, "REGISTRATION_EVENTS_WEBHOOK_URL"},
		{"events webhook with events off", map[string]string{"REGISTRATION_EVENTS": "off", "REGISTRATION_EVENTS_WEBHOOK_URL": "http://x/e"}, "REGISTRATION_EVENTS_WEBHOOK_URL"},
		{"events retry max below min", map[string]string{"REGISTRATION_EVENTS_WEBHOOK_RETRY_MS": "1000", "REGISTRATION_EVENTS_WEBHOOK_RETRY_MAX_MS": "999"}, "REGISTRATION_EVENTS_WEBHOOK_RETRY_MAX_MS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Load returned a config with the error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantV) {
				t.Errorf("error %q does not name %s", msg, tt.wantV)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
}

func TestLoad_FirstErrorWins(t *testing.T) {
	_, err := Load(env(map[string]string{"JAMBONES_LOGLEVEL": "loud", "JAMBONES_REDIS_PORT": "x"}))
	if err == nil || !strings.Contains(err.Error(), "JAMBONES_LOGLEVEL") || strings.Contains(err.Error(), "JAMBONES_REDIS_PORT") {
		t.Fatalf("err = %v, want only the first variable named", err)
	}
}

func TestLoad_DrachtioWithSecret(t *testing.T) {
	c := mustLoad(t, map[string]string{"DRACHTIO_HOST": "10.0.0.5", "DRACHTIO_SECRET": "s"})
	if !c.Drachtio.Enabled() || c.Drachtio.Port != 9022 || c.Drachtio.TLS {
		t.Fatalf("Drachtio = %+v", c.Drachtio)
	}
}

func TestLoad_DrachtioTLS(t *testing.T) {
	c := mustLoad(t, map[string]string{"DRACHTIO_HOST": "10.0.0.5", "DRACHTIO_SECRET": "s", "DRACHTIO_TLS": "on", "DRACHTIO_TLS_CA_FILE": "/etc/ca.pem"})
	if !c.Drachtio.TLS || c.Drachtio.TLSCAFile != "/etc/ca.pem" {
		t.Fatalf("Drachtio = %+v", c.Drachtio)
	}
	c = mustLoad(t, map[string]string{"DRACHTIO_HOST": "10.0.0.5", "DRACHTIO_SECRET": "s", "DRACHTIO_TLS": "off"})
	if c.Drachtio.TLS {
		t.Fatalf("DRACHTIO_TLS=off: %+v", c.Drachtio)
	}
}

func TestLoad_SentinelsWithoutMasterName(t *testing.T) {
	_, err := Load(env(map[string]string{"JAMBONES_REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379"}))
	if err == nil || !strings.Contains(err.Error(), "JAMBONES_REDIS_SENTINEL_MASTER_NAME") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoad_WritePoolOnlyWhenComplete(t *testing.T) {
	full := map[string]string{
		"JAMBONES_MYSQL_WRITE_HOST":     "writer",
		"JAMBONES_MYSQL_WRITE_PORT":     "3307",
		"JAMBONES_MYSQL_WRITE_USER":     "wu",
		"JAMBONES_MYSQL_WRITE_PASSWORD": "wp",
		"JAMBONES_MYSQL_WRITE_DATABASE": "wd",
	}
	c := mustLoad(t, full)
	want := MySQL{Host: "writer", Port: 3307, User: "wu", Password: "wp", Database: "wd", ConnectionLimit: 10,
		DialTimeout: time.Second, Timeout: 3 * time.Second}
	if c.MySQLWrite != want || !c.MySQLWrite.Enabled() {
		t.Fatalf("MySQLWrite = %+v, want %+v", c.MySQLWrite, want)
	}
	// Any of host, user, password or database missing disables the write
	// pool (the port has a default, as the read pool's).
	for _, drop := range []string{"JAMBONES_MYSQL_WRITE_HOST", "JAMBONES_MYSQL_WRITE_USER",
		"JAMBONES_MYSQL_WRITE_PASSWORD", "JAMBONES_MYSQL_WRITE_DATABASE"} {
		t.Run("without "+drop, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range full {
				if k != drop {
					m[k] = v
				}
			}
			c := mustLoad(t, m)
			if c.MySQLWrite.Enabled() || c.MySQLWrite != (MySQL{}) {
				t.Fatalf("MySQLWrite = %+v, want disabled", c.MySQLWrite)
			}
		})
	}
	t.Run("port defaults", func(t *testing.T) {
		m := map[string]string{}
		for k, v := range full {
			if k != "JAMBONES_MYSQL_WRITE_PORT" {
				m[k] = v
			}
		}
		if c := mustLoad(t, m); c.MySQLWrite.Port != 3306 || !c.MySQLWrite.Enabled() {
			t.Fatalf("MySQLWrite = %+v", c.MySQLWrite)
		}
	})
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		in      string
		want    []Listen
		wantErr string
	}{
		{in: "udp:0.0.0.0:5060", want: []Listen{{"udp", "0.0.0.0", 5060}}},
		{in: "UDP:127.0.0.1:5060,TCP:127.0.0.1:5061", want: []Listen{{"udp", "127.0.0.1", 5060}, {"tcp", "127.0.0.1", 5061}}},
		{in: " tls:10.0.0.1:5061 , wss:10.0.0.1:8443 ,", want: []Listen{{"tls", "10.0.0.1", 5061}, {"wss", "10.0.0.1", 8443}}},
		{in: "ws:10.0.0.1:8080", want: []Listen{{"ws", "10.0.0.1", 8080}}},
		{in: "udp:[::1]:5060", want: []Listen{{"udp", "::1", 5060}}},
		{in: "tcp:[2001:db8::1]:5080", want: []Listen{{"tcp", "2001:db8::1", 5080}}},
		{in: "udp:127.0.0.1:0", want: []Listen{{"udp", "127.0.0.1", 0}}},
		{in: "sctp:127.0.0.1:5060", wantErr: "unknown transport"},
		{in: "127.0.0.1:5060", wantErr: "unknown transport"},
		{in: "udp", wantErr: "transport:host:port"},
		{in: "udp:127.0.0.1", wantErr: "transport:host:port"},
		{in: "udp:127.0.0.1:", wantErr: "bad port"},
		{in: "udp:127.0.0.1:sip", wantErr: "bad port"},
		{in: "udp:127.0.0.1:65536", wantErr: "bad port"},
		{in: "udp:127.0.0.1:-1", wantErr: "bad port"},
		{in: "udp:[::1]", wantErr: "bad port"},
		{in: "udp:sbc.example.com:5060", wantErr: "IP address"},
		{in: "udp:localhost:5060", wantErr: "IP address"},
		{in: "udp::5060", wantErr: "IP address"},
		{in: "", wantErr: "at least one"},
		{in: " , ,", wantErr: "at least one"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseListen(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseListen(%q) = %v, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseListen(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseListen(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestListen_String(t *testing.T) {
	for l, want := range map[Listen]string{
		{"udp", "127.0.0.1", 5060}: "udp:127.0.0.1:5060",
		{"tcp", "::1", 5061}:       "tcp:[::1]:5061",
	} {
		if got := l.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		back, err := ParseListen(l.String())
		if err != nil || len(back) != 1 || back[0] != l {
			t.Errorf("ParseListen(%q) = %v, %v", l.String(), back, err)
		}
	}
}

func TestConfig_InNetwork(t *testing.T) {
	c := mustLoad(t, nil)
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "172.16.5.5": true, "192.168.0.7": true, "192.168.1.7": false,
		"8.8.8.8": false, "::ffff:10.0.0.1": true, "2001:db8::1": false,
	} {
		if got := c.InNetwork(netip.MustParseAddr(ip)); got != want {
			t.Errorf("InNetwork(%s) = %v, want %v", ip, got, want)
		}
	}
}
