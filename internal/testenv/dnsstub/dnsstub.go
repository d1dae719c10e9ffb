// Package dnsstub is a DNS server for tests: it answers A and SRV queries
// over UDP from fixed records, so code taking a *net.Resolver can be pointed
// at it (Resolver) instead of the system's DNS.
package dnsstub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// SRV is one SRV record.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Records are the zone: names without the trailing dot, case-insensitive.
type Records struct {
	A   map[string][]string // name -> IPv4 addresses
	SRV map[string][]SRV    // _service._proto.name -> records
}

// Server answers queries until Close.
type Server struct {
	pc   net.PacketConn
	recs Records
	wg   sync.WaitGroup

	mu      sync.Mutex
	queries []string
}

// Start listens on addr (ip:port, UDP).
func Start(addr string, recs Records) (*Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dnsstub: %w", err)
	}
	s := &Server{pc: pc, recs: recs}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.pc.Close()
	s.wg.Wait()
}

// Resolver returns a pure-Go resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	addr := s.pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// Queries returns "TYPE name" of every query received, in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *Server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if res, err := s.answer(buf[:n]); err == nil {
			_, _ = s.pc.WriteTo(res, from)
		}
	}
}

const (
	typeA   = 1
	typeSRV = 33
)

// answer builds the response to one query (one question; additional
// records such as EDNS OPT are ignored).
func (s *Server) answer(q []byte) ([]byte, error) {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil, errors.New("not a single-question query")
	}
	name, end, err := readName(q, 12)
	if err != nil || end+4 > len(q) {
		return nil, errors.New("bad question")
	}
	qtype := binary.BigEndian.Uint16(q[end : end+2])
	question := q[12 : end+4]
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	s.mu.Lock()
	s.queries = append(s.queries, fmt.Sprintf("%d %s", qtype, name))
	s.mu.Unlock()

	var answers [][]byte
	known := false
	for key, ips := range s.recs.A {
		if strings.EqualFold(key, name) {
			known = true
			if qtype == typeA {
				for _, ip := range ips {
					if v4 := net.ParseIP(ip).To4(); v4 != nil {
						answers = append(answers, rr(typeA, v4))
					}
				}
			}
		}
	}
	for key, srvs := range s.recs.SRV {
		if strings.EqualFold(key, name) {
			known = true
			if qtype == typeSRV {
				for _, r := range srvs {
					data := binary.BigEndian.AppendUint16(nil, r.Priority)
					data = binary.BigEndian.AppendUint16(data, r.Weight)
					data = binary.BigEndian.AppendUint16(data, r.Port)
					answers = append(answers, rr(typeSRV, append(data, encodeName(r.Target)...)))
				}
			}
		}
	}
	flags := uint16(0x8180) // response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	res := make([]byte, 12, 512)
	copy(res[0:2], q[0:2])
	binary.BigEndian.PutUint16(res[2:4], flags)
	binary.BigEndian.PutUint16(res[4:6], 1)
	binary.BigEndian.PutUint16(res[6:8], uint16(len(answers)))
	res = append(res, question...)
	for _, a := range answers {
		res = append(res, a...)
	}
	return res, nil
}

// rr is a resource record named by a pointer to the question's name.
func rr(typ uint16, data []byte) []byte {
	b := []byte{0xc0, 12}
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, 1) // IN
	b = binary.BigEndian.AppendUint32(b, 5) // TTL
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func encodeName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// readName reads an uncompressed name (questions are never compressed).
func readName(m []byte, off int) (string, int, error) {
	var labels []string
	for {
		if off >= len(m) {
			return "", 0, errors.New("truncated name")
		}
		l := int(m[off])
		off++
		if l == 0 {
			return strings.Join(labels, ".") + ".", off, nil
		}
		if l > 63 || off+l > len(m) {
			return "", 0, errors.New("bad label")
		}
		labels = append(labels, string(m[off:off+l]))
		off += l
	}
}
