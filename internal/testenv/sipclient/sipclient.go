// Package sipclient is a SIP user agent for tests of the transports sipp
// lacks (Debian's sipp has no TLS and no WebSocket): it REGISTERs over
// udp, tcp, tls, ws or wss and answers digest challenges.
package sipclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Client is one user agent with its own connections.
type Client struct {
	ua  *sipgo.UserAgent
	cli *sipgo.Client
}

// New returns a client; tlsConf (RootCAs) is used for tls and wss.
func New(tlsConf *tls.Config) (*Client, error) {
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgent("sipclient-test")}
	if tlsConf != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(tlsConf))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return nil, fmt.Errorf("sipclient: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sipclient: %w", err)
	}
	return &Client{ua: ua, cli: cli}, nil
}

// Close closes the client's connections.
func (c *Client) Close() { c.ua.Close() }

// Register describes one REGISTER.
type Register struct {
	Transport string // udp, tcp, tls, ws, wss
	Target    string // ip:port of the registrar
	User      string
	Realm     string
	Password  string // empty: no answer to a challenge
	Expires   int
	CallID    string // default: random
}

// Do sends the REGISTER, answers one 401 with digest credentials, and
// returns the final response.
func (c *Client) Do(ctx context.Context, r Register) (*sip.Response, error) {
	tr := strings.ToUpper(r.Transport)
	contact := sip.Uri{User: r.User, Host: "127.0.0.1", UriParams: sip.NewParams()}
	if tr == "WS" || tr == "WSS" {
		// RFC 7118 clients put an invalid host and transport=ws in Contact;
		// sbc-outbound looks for "transport=ws" in the stored contact.
		contact.Host = "df7jal23ls0d.invalid"
		contact.UriParams.Add("transport", "ws")
	} else {
		contact.UriParams.Add("transport", strings.ToLower(tr))
	}
	aor := sip.Uri{User: r.User, Host: r.Realm}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Host: r.Realm})
	fromParams := sip.NewParams()
	fromParams.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(&sip.FromHeader{Address: aor, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(&sip.ContactHeader{Address: contact, Params: sip.NewParams()})
	exp := sip.ExpiresHeader(r.Expires)
	req.AppendHeader(&exp)
	if r.CallID != "" {
		cid := sip.CallIDHeader(r.CallID)
		req.AppendHeader(&cid)
	}
	req.SetTransport(tr)
	req.SetDestination(r.Target)
	res, err := c.cli.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sipclient: REGISTER over %s: %w", tr, err)
	}
	if res.StatusCode != 401 || r.Password == "" {
		return res, nil
	}
	res, err = c.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: r.User, Password: r.Password})
	if err != nil {
		return nil, fmt.Errorf("sipclient: authenticated REGISTER over %s: %w", tr, err)
	}
	return res, nil
}
