package fronttest_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/drachtiofront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/native"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/drachtiostub"
)

func loopbackPrivate(a netip.Addr) bool { return a.IsLoopback() }

func serve(t *testing.T, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestConformance_Native(t *testing.T) {
	fronttest.Run(t, func(t *testing.T, h sipfront.Handler, o sipfront.LoopOptions) fronttest.Target {
		f, err := native.New(native.Options{
			Listen:    []config.Listen{{Transport: "udp", Host: "127.0.0.1", Port: 16640}, {Transport: "tcp", Host: "127.0.0.1", Port: 16640}},
			InNetwork: loopbackPrivate,
			Loop:      o,
		}, h, []string{"REGISTER"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Listen(context.Background()); err != nil {
			t.Fatal(err)
		}
		serve(t, f.Serve)
		return fronttest.Target{UDP: "127.0.0.1:16640", SBCAddress: "udp/127.0.0.1:16640,tcp/127.0.0.1:16640", PrivateSBCAddress: "127.0.0.1:16640", InFlight: f.InFlight}
	}, "127.0.0.1")
}

func TestConformance_Drachtio(t *testing.T) {
	fronttest.Run(t, func(t *testing.T, h sipfront.Handler, o sipfront.LoopOptions) fronttest.Target {
		stub := drachtiostub.Start(t, drachtiostub.Options{Control: "127.0.0.1:19640", Secret: "s", ExternalIP: "198.51.100.7", WriteChunk: 5,
			SIP: []drachtiostub.Listen{{Transport: "udp", Addr: "127.0.0.1:16641"}, {Transport: "tcp", Addr: "127.0.0.1:16641"}}})
		f, err := drachtiofront.New(drachtiofront.Options{Addr: "127.0.0.1:19640", Secret: "s", InNetwork: loopbackPrivate, Loop: o}, h, []string{"REGISTER"})
		if err != nil {
			t.Fatal(err)
		}
		serve(t, f.Serve)
		<-f.Ready()
		if v := stub.Violations(); len(v) > 0 {
			t.Fatal(v)
		}
		return fronttest.Target{UDP: "127.0.0.1:16641", SBCAddress: "udp/198.51.100.7:16641,tcp/198.51.100.7:16641", PrivateSBCAddress: "127.0.0.1:16641", InFlight: f.InFlight}
	}, "127.0.0.1")
}
