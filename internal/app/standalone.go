package app

import (
	"fmt"
	"strings"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/directory/filedir"
)

// Mode says where the data comes from.
type Mode struct {
	EmbeddedStore bool // no Redis: memstore
	Demo          bool // no MySQL and no config file: the built-in directory
}

// ModeOf derives the mode from the configuration.
func ModeOf(cfg *config.Config) Mode {
	return Mode{EmbeddedStore: !cfg.Redis.Enabled(), Demo: !cfg.MySQL.Enabled() && cfg.ConfigFile == ""}
}

// demoListen applies demo mode's loopback default.
func demoListen(cfg *config.Config) []config.Listen {
	if ModeOf(cfg).Demo && !cfg.SIPListenSet {
		l, _ := config.ParseListen(config.DemoListen) // a constant that parses
		return l
	}
	return cfg.SIPListen
}

// Banner is the text printed at start-up in demo mode ("" otherwise): the
// realm, user, password and addresses a newcomer needs to register.
func Banner(cfg *config.Config) string {
	m := ModeOf(cfg)
	if !m.Demo {
		return ""
	}
	var addrs []string
	loopback := true
	for _, l := range demoListen(cfg) {
		addrs = append(addrs, l.String())
		if !strings.HasPrefix(l.Host, "127.") && l.Host != "::1" {
			loopback = false
		}
	}
	store := "Redis"
	if m.EmbeddedStore {
		store = "embedded, saved in " + cfg.StateFile
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nsbc-sip-sidecar %s: DEMO MODE (no MySQL, no --config file): built-in configuration\n", config.Version)
	fmt.Fprintf(&b, "  SIP realm (domain): %s\n", filedir.DemoRealm)
	fmt.Fprintf(&b, "  user / password:    %s / %s\n", filedir.DemoUser, filedir.DemoPassword)
	fmt.Fprintf(&b, "  listening:          %s\n", strings.Join(addrs, ", "))
	fmt.Fprintf(&b, "  registrations:      %s\n", store)
	if loopback {
		b.WriteString("  Loopback only, because the demo password is public; set SIP_LISTEN to change it.\n")
	} else {
		b.WriteString("  WARNING: listening beyond loopback with the public demo password: anyone who reaches\n" +
			"  these addresses can register. Use --config FILE for real accounts.\n")
	}
	b.WriteString("\n")
	return b.String()
}
