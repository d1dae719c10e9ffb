package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// Ports of this test: SIP 16950, HTTP 16951, StatsD 16952, sipp 16953.

// TestMembersMetrics: after OPTIONS check-ins of two feature servers and one RTP server, the
// member counts are published under the names of docs/operations.md and of the original's
// StatsD gauges: members{kind="featureservers"|"rtpservers"} on /metrics, and the StatsD
// gauges featureservers and rtpservers. Through the real wiring: check-ins over SIP, the
// service's gauge loop, a scrape and a StatsD listener.
func TestMembersMetrics(t *testing.T) {
	rdb := redisClient(t)
	ctx := context.Background()
	const cluster = "e2e-members"
	var keys []string
	for _, set := range []string{"active-fs", "fs-service-url", "active-rtp"} {
		keys = append(keys, cluster+":"+set, cluster+":"+set+":lastseen")
	}
	rdb.Del(ctx, keys...)
	t.Cleanup(func() { rdb.Del(ctx, keys...) })

	lines := statsdListener(t, "127.0.0.1:16952")
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:16950"
	env["HTTP_PORT"] = "16951"
	env["JAMBONES_CLUSTER_ID"] = cluster
	env["ENABLE_METRICS"] = "1"
	env["STATS_HOST"] = "127.0.0.1"
	env["STATS_PORT"] = "16952"
	env["CHECK_EXPIRES_INTERVAL"] = "100" // the gauges are refreshed at this interval
	sidecar.Start(t, env, "native front listening")

	target := "127.0.0.1:16950"
	for _, c := range []struct{ scenario, ip, members string }{
		{"uac-add-fs-1.xml", "127.0.0.20", "1"},
		{"uac-add-fs-2.xml", "127.0.0.21", "2"},
		{"uac-add-rtp-1.xml", "127.0.0.20", "1"},
	} {
		if got := checkIn(t, target, c.scenario, c.ip, 16953); got != c.members {
			t.Fatalf("%s from %s: X-Members = %q, want %q", c.scenario, c.ip, got, c.members)
		}
	}

	const fsGauge, rtpGauge = `sbc_sip_sidecar_members{kind="featureservers"}`, `sbc_sip_sidecar_members{kind="rtpservers"}`
	url := "http://127.0.0.1:16951/metrics"
	eventuallyTrue(t, 10*time.Second, "members gauges on /metrics", func() bool {
		m := scrape(t, url)
		return m[fsGauge] == 2 && m[rtpGauge] == 1
	})
	for key := range scrape(t, url) {
		if strings.HasPrefix(key, "sbc_sip_sidecar_members{") && key != fsGauge && key != rtpGauge {
			t.Errorf("unexpected members series %s", key)
		}
	}

	want := map[string]bool{"featureservers:2|g": false, "rtpservers:1|g": false}
	deadline := time.After(10 * time.Second)
	for !want["featureservers:2|g"] || !want["rtpservers:1|g"] {
		select {
		case l := <-lines:
			if _, ok := want[l]; ok {
				want[l] = true
			}
			if name, _, _ := strings.Cut(l, ":"); name == "fs" || name == "rtp" {
				t.Errorf("StatsD gauge under the wrong name: %q", l)
			}
		case <-deadline:
			t.Fatalf("StatsD gauges seen: %v", fmt.Sprint(want))
		}
	}
}
