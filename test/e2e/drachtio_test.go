package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// startThroughDrachtio runs the drachtio-server stand-in on sipPort (udp and
// tcp) and control port ctl, and the service connected to it.
func startThroughDrachtio(t *testing.T, sipPort, ctl int, extra map[string]string) (*drachtiostub.Server, *sidecar.Proc) {
	t.Helper()
	stub := drachtiostub.Start(t, drachtiostub.Options{
		Control:    fmt.Sprintf("127.0.0.1:%d", ctl),
		Secret:     "cymru",
		SIP:        []drachtiostub.Listen{{Transport: "udp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)}, {Transport: "tcp", Addr: fmt.Sprintf("127.0.0.1:%d", sipPort)}},
		ExternalIP: "203.0.113.10",
		WriteChunk: 7, // every frame split across reads
	})
	env := sidecar.BaseEnv(t)
	env["DRACHTIO_HOST"] = "127.0.0.1"
	env["DRACHTIO_PORT"] = fmt.Sprint(ctl)
	env["DRACHTIO_SECRET"] = "cymru"
	env["JAMBONES_NETWORK_CIDR"] = "127.0.0.0/8"
	for k, v := range extra {
		env[k] = v
	}
	p := sidecar.Start(t, env, "drachtio front connected")
	return stub, p
}

// TestDrachtioRegisterScenarios runs the original REGISTER scenarios through
// the drachtio front and checks the same Redis results as in native mode,
// with sbcAddress = drachtio's hostports verbatim and privateSbcAddress from
// its local hostports.
func TestDrachtioRegisterScenarios(t *testing.T) {
	for _, tc := range []struct {
		transport, sippTransport string
		sipPort, ctl, sippPort   int
	}{
		{"udp", "u1", 16600, 19600, 16610},
		{"tcp", "t1", 16601, 19601, 16611},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			rdb := redisClient(t)
			opts := authserver.DefaultOptions()
			opts.WebhookSecret = "foobar"
			hook := sidecar.Webhook(t, opts)
			stub, _ := startThroughDrachtio(t, tc.sipPort, tc.ctl, nil)
			want := binding{
				Contact:           fmt.Sprintf("sip:sipp@127.0.0.1:%d", tc.sippPort),
				SBCAddress:        fmt.Sprintf("udp/203.0.113.10:%d,tcp/203.0.113.10:%d", tc.sipPort, tc.sipPort),
				PrivateSBCAddress: fmt.Sprintf("127.0.0.1:%d", tc.sipPort),
				Protocol:          tc.transport,
				Proxy:             fmt.Sprintf("sip:127.0.0.1:%d", tc.sippPort),
				CallHook:          "http://127.0.0.1/call",
				CallStatusHook:    "http://127.0.0.1/call-status",
			}
			if stub.Hostports() != want.SBCAddress {
				t.Fatalf("stub hostports %q, test expects %q", stub.Hostports(), want.SBCAddress)
			}
			registerScenarios(t, rdb, hook, fmt.Sprintf("127.0.0.1:%d", tc.sipPort), tc.sippPort, tc.sippTransport, want,
				func(_ binding, _ map[string]any, call authserver.Recorded) {
					if f := call.Fields; f.SourcePort != tc.sippPort || f.SourceAddress != "127.0.0.1" {
						t.Errorf("webhook source = %s:%d, want 127.0.0.1:%d", f.SourceAddress, f.SourcePort, tc.sippPort)
					}
				})
			if v := stub.Violations(); len(v) != 0 {
				t.Errorf("protocol violations: %v", v)
			}
		})
	}
}

// TestDrachtioOptionsPing runs the original OPTIONS keepalive scenario
// (200 without X-Members) through the drachtio front, over UDP and TCP.
func TestDrachtioOptionsPing(t *testing.T) {
	stub, _ := startThroughDrachtio(t, 16603, 19603, nil)
	for _, tr := range []string{"u1", "t1"} {
		sidecar.Run(t, sidecar.Sipp{Scenario: "uac-external-options-ping.xml", Target: "127.0.0.1:16603",
			LocalPort: 16613, Transport: tr, Calls: 20, Rate: 50})
	}
	if v := stub.Violations(); len(v) != 0 {
		t.Errorf("protocol violations: %v", v)
	}
}

// TestDrachtioPeerRestartUnderLoad kills drachtio-server's control side in
// the middle of a sipp run and brings it back: the service reconnects,
// routes again and answers every new request; it neither exits nor panics.
func TestDrachtioPeerRestartUnderLoad(t *testing.T) {
	stub, proc := startThroughDrachtio(t, 16604, 19604, nil)
	target := "127.0.0.1:16604"
	load := make(chan error, 1)
	go func() {
		load <- sidecar.RunErr(t, sidecar.Sipp{Scenario: "uac-external-options-ping.xml", Target: target,
			LocalPort: 16614, Calls: 1500, Rate: 300, Timeout: 15 * time.Second})
	}()
	waitFor(t, "first requests answered", func() bool { return stub.Answered() >= 100 })
	stub.StopControl()
	time.Sleep(300 * time.Millisecond) // the SBC is down for a moment
	if err := stub.StartControl(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitFor(t, "re-routed after restart", func() bool { return stub.Routed("options") == 1 && stub.Routed("register") == 1 })
	t.Logf("reconnected and routed %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if err := <-load; err != nil {
		// Requests arriving while no client was routed got 503 from the
		// stand-in (as drachtio-server does): failures are expected here.
		t.Logf("load run during the restart: %s", firstLine(err.Error()))
	}
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-external-options-ping.xml", Target: target,
		LocalPort: 16615, Calls: 300, Rate: 300})
	select {
	case <-proc.Done():
		t.Fatalf("service exited: %s", proc.Logs())
	default:
	}
	if logs := proc.Logs(); strings.Contains(logs, "panic") {
		t.Errorf("service logged a panic")
	}
	if n := stub.Clients(); n != 1 {
		t.Errorf("%d control connections, want 1", n)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
