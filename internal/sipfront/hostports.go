package sipfront

import (
	"net"
	"strconv"
	"strings"
)

// Hostport is one entry of a hostport list in drachtio's format
// (udp/1.2.3.4:5060,tcp/[2001:db8::1]:5060,...): the SBCAddress of a
// Request, stored verbatim as a registration's sbcAddress
// (docs/contract.md).
type Hostport struct {
	Transport string // lower case: udp, tcp, tls, ws, wss
	Host      string // IP literal without brackets
	Port      int
}

// Addr is host:port, IPv6 hosts in brackets.
func (h Hostport) Addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// String is the list entry: transport/host:port.
func (h Hostport) String() string { return h.Transport + "/" + h.Addr() }

// JoinHostports formats a hostport list.
func JoinHostports(hs []Hostport) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.String()
	}
	return strings.Join(parts, ",")
}

// ParseHostports parses a hostport list; entries that are not
// transport/host:port are skipped.
func ParseHostports(s string) []Hostport {
	var out []Hostport
	for _, e := range strings.Split(s, ",") {
		transport, addr, ok := strings.Cut(strings.TrimSpace(e), "/")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			continue
		}
		port, err := strconv.ParseUint(addr[i+1:], 10, 16)
		if err != nil {
			continue
		}
		out = append(out, Hostport{Transport: strings.ToLower(transport), Host: strings.Trim(addr[:i], "[]"), Port: int(port)})
	}
	return out
}

// AddressFor returns host:port of transport in a hostport list, falling
// back to the first udp entry; "" when neither is there.
func AddressFor(hostports, transport string) string {
	first := ""
	for _, h := range ParseHostports(hostports) {
		if h.Transport == transport {
			return h.Addr()
		}
		if h.Transport == "udp" && first == "" {
			first = h.Addr()
		}
	}
	return first
}
