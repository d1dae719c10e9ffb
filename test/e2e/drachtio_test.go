package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/authserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// startThroughDrachtio runs a drachtio-server of kind on sipPort (udp and tcp) and control port
// ctl, announcing 203.0.113.10, and the service connected to it.
func startThroughDrachtio(t *testing.T, kind peerKind, sipPort, ctl int, extra map[string]string) (drachtioPeer, *sidecar.Proc) {
	t.Helper()
	peer := startPeer(t, kind, sipPort, ctl, "203.0.113.10")
	env := drachtioEnv(t, ctl)
	for k, v := range extra {
		env[k] = v
	}
	p := sidecar.Start(t, env, "drachtio front connected")
	return peer, p
}

// TestDrachtioRegisterScenarios runs the REGISTER scenarios through the drachtio front and
// checks the same Redis results as in native mode, with sbcAddress = drachtio's hostports
// verbatim and privateSbcAddress from its local hostports.
func TestDrachtioRegisterScenarios(t *testing.T) {
	for _, kind := range peerKinds {
		for _, tc := range []struct {
			transport, sippTransport string
			sipPort, ctl, sippPort   int
		}{
			{"udp", "u1", 16600, 19600, 16610},
			{"tcp", "t1", 16601, 19601, 16611},
		} {
			t.Run(string(kind)+"/"+tc.transport, func(t *testing.T) {
				sipPort, ctl := peerPorts(kind, tc.sipPort, tc.ctl)
				sippPort, _ := peerPorts(kind, tc.sippPort, 0)
				rdb := redisClient(t)
				opts := authserver.DefaultOptions()
				opts.WebhookSecret = "foobar"
				hook := sidecar.Webhook(t, opts)
				peer, _ := startThroughDrachtio(t, kind, sipPort, ctl, nil)
				want := binding{
					Contact:           fmt.Sprintf("sip:sipp@127.0.0.1:%d", sippPort),
					SBCAddress:        wantHostports(t, peer, "203.0.113.10", sipPort),
					PrivateSBCAddress: fmt.Sprintf("127.0.0.1:%d", sipPort),
					Protocol:          tc.transport,
					Proxy:             fmt.Sprintf("sip:127.0.0.1:%d", sippPort),
					CallHook:          "http://127.0.0.1/call",
					CallStatusHook:    "http://127.0.0.1/call-status",
				}
				registerScenarios(t, rdb, hook, fmt.Sprintf("127.0.0.1:%d", sipPort), sippPort, tc.sippTransport, want,
					func(_ binding, _ map[string]any, call authserver.Recorded) {
						if f := call.Fields; f.SourcePort != sippPort || f.SourceAddress != "127.0.0.1" {
							t.Errorf("webhook source = %s:%d, want 127.0.0.1:%d", f.SourceAddress, f.SourcePort, sippPort)
						}
					})
				if v := peer.Violations(); len(v) != 0 {
					t.Errorf("protocol violations: %v", v)
				}
			})
		}
	}
}

// TestDrachtioOptionsPing runs the OPTIONS keepalive scenario (200 without X-Members) through
// the drachtio front, over UDP and TCP.
func TestDrachtioOptionsPing(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) {
			sipPort, ctl := peerPorts(kind, 16603, 19603)
			sippPort, _ := peerPorts(kind, 16613, 0)
			peer, _ := startThroughDrachtio(t, kind, sipPort, ctl, nil)
			for _, tr := range []string{"u1", "t1"} {
				sidecar.Run(t, sidecar.Sipp{Scenario: "uac-external-options-ping.xml", Target: fmt.Sprintf("127.0.0.1:%d", sipPort),
					LocalPort: sippPort, Transport: tr, Calls: 20, Rate: 50})
			}
			if v := peer.Violations(); len(v) != 0 {
				t.Errorf("protocol violations: %v", v)
			}
		})
	}
}

// TestDrachtioReconnectAfterServerRestart: drachtio-server is restarted between two OPTIONS
// runs; the service reconnects, routes again and answers every request of the second run.
func TestDrachtioReconnectAfterServerRestart(t *testing.T) {
	for _, kind := range peerKinds {
		t.Run(string(kind), func(t *testing.T) {
			sipPort, ctl := peerPorts(kind, 16606, 19606)
			sippPort, _ := peerPorts(kind, 16616, 0)
			peer, proc := startThroughDrachtio(t, kind, sipPort, ctl, nil)
			target := fmt.Sprintf("127.0.0.1:%d", sipPort)
			run := func() {
				sidecar.Run(t, sidecar.Sipp{Scenario: "uac-external-options-ping.xml", Target: target,
					LocalPort: sippPort, Calls: 50, Rate: 100})
			}
			run()
			peer.Restart(t, "")
			waitFor(t, "reconnected after the restart", func() bool {
				return strings.Count(proc.Logs(), "drachtio front connected") == 2
			})
			run()
			select {
			case <-proc.Done():
				t.Fatalf("service exited: %s", proc.Logs())
			default:
			}
			if strings.Contains(proc.Logs(), "panic") {
				t.Errorf("service logged a panic")
			}
		})
	}
}

// TestDrachtioPeerRestartUnderLoad kills drachtio-server's control side in
// the middle of a sipp run and brings it back: the service reconnects,
// routes again and answers every new request; it neither exits nor panics.
//
// Stand-in only: it counts what it answered and routed, which a real server does not tell.
func TestDrachtioPeerRestartUnderLoad(t *testing.T) {
	peer, proc := startThroughDrachtio(t, standIn, 16604, 19604, nil)
	stub := peer.(stubPeer)
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
