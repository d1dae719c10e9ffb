package e2e

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// get fetches url from the local address from (nil: any) and returns the
// status, or an error when no connection could be made.
func get(from net.IP, url string) (int, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if from != nil {
		d.LocalAddr = &net.TCPAddr{IP: from}
	}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// TestHTTPListen_AddressAndLoopbackOnlyPProf: HTTP_LISTEN binds the one
// address given; with PPROF=1 the profiler answers loopback peers, and on
// HTTP_PORT (all interfaces) it refuses peers from the host's other
// addresses with 403 while probes and metrics stay open to them.
func TestHTTPListen_AddressAndLoopbackOnlyPProf(t *testing.T) {
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "udp:127.0.0.1:16960"
	env["HTTP_LISTEN"] = "127.0.0.1:16961"
	env["HTTP_PORT"] = "16962" // ignored: HTTP_LISTEN wins
	env["PPROF"] = "1"
	proc := sidecar.Start(t, env, "native front listening")

	if code, err := get(net.IPv4(127, 0, 0, 1), "http://127.0.0.1:16961/debug/pprof/cmdline"); err != nil || code != 200 {
		t.Errorf("pprof from loopback on HTTP_LISTEN: %d %v, want 200", code, err)
	}
	if code, err := get(nil, "http://127.0.0.1:16961/ready"); err != nil || code != 200 {
		t.Errorf("/ready on HTTP_LISTEN: %d %v", code, err)
	}
	// Only 127.0.0.1 is bound: another loopback address and HTTP_PORT are not.
	if _, err := get(nil, "http://127.0.0.2:16961/health"); err == nil {
		t.Errorf("HTTP_LISTEN=127.0.0.1:16961 also answers on 127.0.0.2")
	}
	if _, err := get(nil, "http://127.0.0.1:16962/health"); err == nil {
		t.Errorf("HTTP_PORT is served although HTTP_LISTEN is set")
	}
	proc.Stop()

	// HTTP_PORT alone: all interfaces, as before.
	env["SIP_LISTEN"] = "udp:127.0.0.1:16963"
	delete(env, "HTTP_LISTEN")
	sidecar.Start(t, env, "native front listening")
	if code, err := get(net.IPv4(127, 0, 0, 2), "http://127.0.0.2:16962/debug/pprof/cmdline"); err != nil || code != 200 {
		t.Errorf("pprof from 127.0.0.2 on HTTP_PORT: %d %v, want 200", code, err)
	}
	var others []net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			others = append(others, n.IP)
		}
	}
	if len(others) == 0 {
		// A private network namespace has only lo; the refusal itself is
		// covered by internal/app TestHTTPMux_PProfOnlyForLoopbackPeers.
		t.Log("no non-loopback IPv4 address on this host: the 403 to a network peer is not exercised here")
	}
	for _, ip := range others {
		url := "http://" + net.JoinHostPort(ip.String(), "16962")
		if code, err := get(ip, url+"/debug/pprof/cmdline"); err != nil || code != 403 {
			t.Errorf("pprof from %s: %d %v, want 403", ip, code, err)
		}
		if code, err := get(ip, url+"/metrics"); err != nil || code != 200 {
			t.Errorf("/metrics from %s: %d %v, want 200", ip, code, err)
		}
	}
}
