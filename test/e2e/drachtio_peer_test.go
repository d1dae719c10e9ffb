package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtioserver"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
)

// drachtioPeer is the drachtio-server the service connects to in a test: the in-process
// stand-in, or the real server (testenv.DrachtioBin). The tests of the drachtio front that a
// real server can serve run against both, as subtests named after peerKinds.
type drachtioPeer interface {
	// Hostports is what the server announces at authenticate (the sbcAddress of bindings).
	Hostports() string
	// Restart takes the server's control side down and brings it back, announcing
	// externalIP from then on when it is not empty.
	Restart(t *testing.T, externalIP string)
	// Violations are the protocol violations the server saw (the stand-in checks them; a
	// real server reports none).
	Violations() []string
}

type peerKind string

const (
	standIn        peerKind = "stand-in"
	drachtioServer peerKind = "drachtio-server"
)

var peerKinds = []peerKind{standIn, drachtioServer}

// peerPorts gives each kind its own ports so that a real server never meets sockets the
// stand-in left: the real server's are the stand-in's + 1000.
func peerPorts(kind peerKind, sipPort, ctl int) (int, int) {
	if kind == drachtioServer {
		return sipPort + 1000, ctl + 1000
	}
	return sipPort, ctl
}

type stubPeer struct{ *drachtiostub.Server }

func (p stubPeer) Restart(t *testing.T, externalIP string) {
	t.Helper()
	p.StopControl()
	if externalIP != "" {
		p.SetExternalIP(externalIP)
	}
	if err := p.StartControl(); err != nil {
		t.Fatal(err)
	}
}

type realPeer struct{ *drachtioserver.Server }

func (p realPeer) Restart(t *testing.T, externalIP string) {
	t.Helper()
	p.Server.Restart(t, externalIP)
}
func (realPeer) Violations() []string { return nil }

// startPeer starts a drachtio-server of kind with SIP on 127.0.0.1:sipPort (udp and tcp), the
// control port on 127.0.0.1:ctl with secret cymru, and external as its external IP. The
// stand-in writes every frame in pieces of 7 bytes, so the front meets split frames.
func startPeer(t *testing.T, kind peerKind, sipPort, ctl int, external string) drachtioPeer {
	t.Helper()
	if kind == drachtioServer {
		return realPeer{drachtioserver.Start(t, drachtioserver.Options{
			Control:    fmt.Sprintf("127.0.0.1:%d", ctl),
			Secret:     "cymru",
			SIP:        fmt.Sprintf("127.0.0.1:%d", sipPort),
			ExternalIP: external,
		})}
	}
	so := stubOptions(sipPort, ctl, external)
	so.WriteChunk = 7
	return stubPeer{drachtiostub.Start(t, so)}
}

// wantHostports checks that hostports announce udp and tcp on external:sipPort (the real
// server lists tcp first, the stand-in udp) and returns them.
func wantHostports(t *testing.T, p drachtioPeer, external string, sipPort int) string {
	t.Helper()
	hp := p.Hostports()
	parts := strings.Split(hp, ",")
	want := map[string]bool{fmt.Sprintf("udp/%s:%d", external, sipPort): true, fmt.Sprintf("tcp/%s:%d", external, sipPort): true}
	if len(parts) != 2 || !want[parts[0]] || !want[parts[1]] || parts[0] == parts[1] {
		t.Fatalf("hostports %q, want udp and tcp on %s:%d", hp, external, sipPort)
	}
	return hp
}
