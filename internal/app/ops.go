package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/health"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/metrics"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// newMetrics builds the metrics, with StatsD when ENABLE_METRICS=1.
func newMetrics(cfg *config.Config, log *slog.Logger) (*metrics.Metrics, func(), error) {
	var sd *metrics.StatsD
	if cfg.Stats.Enabled {
		var err error
		sd, err = metrics.NewStatsD(metrics.StatsDConfig{
			Host: cfg.Stats.Host, Port: cfg.Stats.Port, Protocol: cfg.Stats.Protocol,
			Prefix: cfg.Stats.Prefix, Tags: cfg.Stats.Tags, SampleRate: cfg.Stats.SampleRate,
			Telegraf: cfg.Stats.Telegraf,
		})
		if err != nil {
			return nil, nil, err
		}
		log.Info("metrics: sending StatsD", "host", cfg.Stats.Host, "port", cfg.Stats.Port, "protocol", cfg.Stats.Protocol)
	}
	return metrics.New(config.Version, sd), func() { _ = sd.Close() }, nil
}

// observeRegister feeds the registrar's outcomes to the metrics.
func observeRegister(m *metrics.Metrics) func(*registrar.Registration, *sipfront.Response, time.Duration) {
	return func(r *registrar.Registration, res *sipfront.Response, elapsed time.Duration) {
		m.ObserveRegister(metrics.Register{
			Status: res.Code, Transport: r.Req.Transport, Cached: r.Cached,
			Unregister: r.Unregister, Elapsed: elapsed,
		})
	}
}

// serveHTTP serves /metrics, /health and /ready on addr (HTTP_LISTEN, or
// HTTP_PORT on all interfaces), and /debug/pprof/ when withPProf (PPROF=1,
// for profiling under load) to loopback clients only, until the returned
// stop is called.
func serveHTTP(j *jobs, addr string, withPProf bool, m *metrics.Metrics, checks *health.Registry, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s (HTTP_LISTEN/HTTP_PORT): %w", addr, err)
	}
	srv := &http.Server{Handler: httpMux(withPProf, m, checks), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	j.Go(func(context.Context) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http: server stopped", "err", err)
		}
	})
	log.Info("http: serving /metrics /health /ready", "addr", ln.Addr().String(), "pprof", withPProf)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// httpMux routes the HTTP server's paths.
func httpMux(withPProf bool, m *metrics.Metrics, checks *health.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if withPProf {
		mux.Handle("GET /debug/pprof/", loopbackOnly(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", loopbackOnly(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", loopbackOnly(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", loopbackOnly(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", loopbackOnly(http.HandlerFunc(pprof.Trace)))
	}
	checks.Register(mux)
	return mux
}

// loopbackOnly answers 403 to clients whose TCP peer address is not
// loopback. The profiler exposes the command line, heap contents and a
// CPU-costly profile endpoint, so it must not be reachable from the network
// even when the HTTP server listens on all interfaces (HTTP_PORT). Only the
// connection's own peer address counts: X-Forwarded-For and the like are
// set by the client and are ignored. A reverse proxy on this host is
// loopback too; whoever runs one decides what it forwards.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			http.Error(w, "pprof is served to loopback clients only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// reloadTLSOnSIGHUP re-reads the SIP TLS certificate on SIGHUP.
func reloadTLSOnSIGHUP(ctx context.Context, reload func() error, log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := reload(); err != nil {
				log.Error("tls: reloading certificate failed, keeping the previous one", "err", err)
				continue
			}
			log.Info("tls: certificate reloaded")
		}
	}
}
