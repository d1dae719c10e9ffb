package metrics_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
)

func TestStatsD_FormatsOfTheOriginal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		telegraf bool
		want     string
	}{
		{"dogstatsd tags", false, "jz.sbc.registration.total.response_time:12|h|#status:200,env:test"},
		{"telegraf tags", true, "jz.sbc.registration.total.response_time,status=200,env=test:12|h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			port := pc.LocalAddr().(*net.UDPAddr).Port
			sd, err := metrics.NewStatsD(metrics.StatsDConfig{Host: "127.0.0.1", Port: port, Protocol: "udp",
				Prefix: "jz.", Tags: "env:test", SampleRate: 1, Telegraf: tc.telegraf})
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			m := metrics.New("test", sd)
			m.ObserveRegister(metrics.Register{Status: 200, Transport: "udp", Elapsed: 12 * time.Millisecond})
			buf := make([]byte, 2048)
			_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(buf[:n]); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStatsD_TCPSendsNewlineTerminatedLines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		var out []string
		for len(out) < 2 && sc.Scan() {
			out = append(out, sc.Text())
		}
		got <- out
	}()
	sd, err := metrics.NewStatsD(metrics.StatsDConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Protocol: "tcp", SampleRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	m := metrics.New("test", sd)
	m.SetActiveBindings(7)
	m.SetMembers(membership.FeatureServers, 2)
	select {
	case lines := <-got:
		if strings.Join(lines, "\n") != "sbc.users.count:7|g\nfeatureservers:2|g" {
			t.Errorf("lines = %q", lines)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no statsd lines over TCP")
	}
}

func TestMetrics_NilIsSafe(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveRegister(metrics.Register{Status: 200})
	m.ObserveWebhook(time.Millisecond, 500)
	m.SetActiveBindings(1)
	m.SetRegbotAgents("registered", 1)
	m.SetMembers(membership.RTPServers, 1)
	m.BackendError(metrics.Redis)
}
