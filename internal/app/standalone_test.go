package app

import (
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
)

func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestModeOf_ChoosesEachSideByConfiguration(t *testing.T) {
	mysql := map[string]string{"JAMBONES_MYSQL_HOST": "db", "JAMBONES_MYSQL_USER": "u", "JAMBONES_MYSQL_DATABASE": "d"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Mode
	}{
		{"NothingConfiguredIsDemo", nil, Mode{EmbeddedStore: true, Demo: true}},
		{"ConfigFileIsNotDemo", map[string]string{"SIDECAR_CONFIG": "x.yaml"}, Mode{EmbeddedStore: true}},
		{"MySQLWithEmbeddedStore", mysql, Mode{EmbeddedStore: true}},
		{"RedisWithDemoDirectory", map[string]string{"JAMBONES_REDIS_HOST": "r"}, Mode{Demo: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ModeOf(load(t, tc.env)); got != tc.want {
				t.Fatalf("ModeOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBanner_DemoListensOnLoopbackUnlessToldOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"Default", nil, []string{"DEMO MODE", "demo / demo1234", "udp:127.0.0.1:5060, tcp:127.0.0.1:5060", "Loopback only", "./sbc-sip-sidecar.state"}},
		{"PublicListenWarns", map[string]string{"SIP_LISTEN": "udp:0.0.0.0:5070"}, []string{"udp:0.0.0.0:5070", "WARNING"}},
		{"NotDemo", map[string]string{"SIDECAR_CONFIG": "x.yaml"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Banner(load(t, tc.env))
			if tc.want == nil && got != "" {
				t.Fatalf("Banner = %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Banner lacks %q:\n%s", w, got)
				}
			}
		})
	}
	if l := demoListen(load(t, nil)); len(l) != 2 || l[0].Host != "127.0.0.1" || l[0].Port != 5060 {
		t.Errorf("demo listen = %v", l)
	}
}
