package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sbcaddr"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/tlsfile"
)

// sipFront is the SIP side as Run needs it, whichever front serves: its
// own SIP stack (native) or drachtio-server's (inside a jambonz SBC).
type sipFront struct {
	// serve serves until ctx ends.
	serve func(ctx context.Context) error
	// client originates requests (regbot, gateway pings).
	client sipfront.Client
	// publicAddress is the address a transport is reached at.
	publicAddress func(transport string) string
	// ready is closed once the front can send.
	ready <-chan struct{}
	// name and check are its readiness check (/ready).
	name  string
	check health.Check
	// addresses keeps this SBC's sbc_addresses rows.
	addresses addressKeeper
	// close releases what was opened when Run fails before serving.
	close func()
}

// openFront builds the front of the configuration: drachtio's when
// DRACHTIO_HOST is set, the native one otherwise.
func openFront(ctx context.Context, cfg *config.Config, h sipfront.Handler, methods []string, be *backend, j *jobs, log *slog.Logger) (*sipFront, error) {
	if cfg.Drachtio.Enabled() {
		return openDrachtio(cfg, h, methods, be, log)
	}
	return openNative(ctx, cfg, h, methods, be, j, log)
}

// openNative listens on SIP_LISTEN (or the demo's loopback default).
func openNative(ctx context.Context, cfg *config.Config, h sipfront.Handler, methods []string, be *backend, j *jobs, log *slog.Logger) (*sipFront, error) {
	var cert *native.Certificate
	if cfg.SIPTLSCertFile != "" {
		var err error
		if cert, err = native.LoadCertificate(cfg.SIPTLSCertFile, cfg.SIPTLSKeyFile); err != nil {
			return nil, err
		}
		j.Go(func(ctx context.Context) { reloadTLSOnSIGHUP(ctx, cert.Reload, log) })
	}
	// Outbound TLS (carriers): SIP_TLS_CA_FILE besides the system roots; our
	// certificate offered when a carrier asks for a client certificate.
	var clientTLS *tls.Config
	if cfg.SIPTLSCAFile != "" || cert != nil {
		var err error
		if clientTLS, err = native.ClientConfig(cfg.SIPTLSCAFile, cert); err != nil {
			return nil, fmt.Errorf("SIP_TLS_CA_FILE: %w", err)
		}
	}
	front, err := native.New(native.Options{
		Listen:        demoListen(cfg),
		PublicAddress: cfg.SIPPublicAddress,
		InNetwork:     cfg.InNetwork,
		UserAgent:     "sbc-sip-sidecar/" + config.Version,
		Log:           log,
		TLS:           cert,
		UDPSockets:    cfg.SIPLimits.UDPSockets,
		UDPWorkers:    cfg.SIPLimits.UDPWorkers,
		UDPQueueWait:  cfg.SIPLimits.UDPQueueWait,
		Limits: native.Limits{
			MaxConnections:      cfg.SIPLimits.MaxConnections,
			MaxConnectionsPerIP: cfg.SIPLimits.MaxConnectionsPerIP,
			HandshakeTimeout:    cfg.SIPLimits.HandshakeTimeout,
			IdleTimeout:         cfg.SIPLimits.IdleTimeout,
			MaxMessageSize:      cfg.SIPLimits.MaxMessageSize,
			UDPStateTTL:         cfg.SIPLimits.UDPStateTTL,
		},
		ClientTLS: clientTLS,
	}, h, methods)
	if err != nil {
		return nil, err
	}
	if err := front.Listen(ctx); err != nil {
		return nil, err
	}
	client, err := front.NewClient(0)
	if err != nil {
		front.Close()
		return nil, err
	}
	ready := make(chan struct{})
	serve := func(ctx context.Context) error {
		close(ready) // listening and reading answers: it can send
		return front.Serve(ctx)
	}
	public := sbcaddr.Public(cfg.SIPListen, cfg.SIPPublicAddress, sbcaddr.InterfaceAddrs())
	return &sipFront{
		serve: serve, client: client, publicAddress: front.PublicAddress, ready: ready,
		name: "sip", check: func(context.Context) error {
			if !front.Listening() {
				return errors.New("not listening")
			}
			return nil
		},
		addresses: be.sbcAddresses(func() []sbcaddr.Address { return public }),
		close:     front.Close,
	}, nil
}

// openDrachtio connects to drachtio-server, which owns the SIP port.
func openDrachtio(cfg *config.Config, h sipfront.Handler, methods []string, be *backend, log *slog.Logger) (*sipFront, error) {
	tlsConf, err := drachtioTLS(cfg.Drachtio)
	if err != nil {
		return nil, err
	}
	var front *drachtiofront.Front
	// The public addresses are drachtio's hostports, known once connected
	// and possibly different after a reconnect.
	addresses := be.sbcAddresses(func() []sbcaddr.Address { return drachtioPublic(front.PublicAddresses()) })
	front, err = drachtiofront.New(drachtiofront.Options{
		Addr:      net.JoinHostPort(cfg.Drachtio.Host, strconv.Itoa(cfg.Drachtio.Port)),
		Secret:    cfg.Drachtio.Secret,
		TLS:       tlsConf,
		InNetwork: cfg.InNetwork,
		OnSession: addresses.Kick,
		Log:       log,
	}, h, methods)
	if err != nil {
		return nil, err
	}
	return &sipFront{
		serve: front.Serve, client: front, publicAddress: front.PublicAddress, ready: front.Ready(),
		name: "drachtio", check: func(context.Context) error {
			if !front.Connected() {
				return errors.New("not connected to drachtio-server")
			}
			return nil
		},
		addresses: addresses,
		close:     func() {}, // nothing is open before Serve
	}, nil
}

// frontReady waits until the front can send; false when ctx ended first.
func frontReady(ctx context.Context, f *sipFront) bool {
	select {
	case <-f.ready:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// drachtioTLS is the TLS configuration of the control connection, nil when
// DRACHTIO_TLS is off. The certificate is verified against DRACHTIO_HOST.
func drachtioTLS(d config.Drachtio) (*tls.Config, error) {
	if !d.TLS {
		return nil, nil
	}
	c := &tls.Config{ServerName: d.Host, MinVersion: tls.VersionTLS12}
	if d.TLSCAFile != "" {
		pool := x509.NewCertPool()
		if err := tlsfile.AddCAFile(pool, d.TLSCAFile); err != nil {
			return nil, fmt.Errorf("drachtio: DRACHTIO_TLS_CA_FILE: %w", err)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// drachtioPublic converts the front's public addresses (from drachtio's
// hostports) into sbc_addresses rows, public IPs only.
func drachtioPublic(pas []drachtiofront.PublicAddress) []sbcaddr.Address {
	addrs := make([]sbcaddr.Address, 0, len(pas))
	for _, pa := range pas {
		ip, err := netip.ParseAddr(pa.IPv4)
		if err != nil {
			continue
		}
		addrs = append(addrs, sbcaddr.Address{IP: ip, Port: pa.Port, TLSPort: pa.TLSPort, WSSPort: pa.WSSPort})
	}
	return sbcaddr.PublicOnly(addrs)
}
