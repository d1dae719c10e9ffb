package sipfront_test

import (
	"reflect"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

func TestParseHostports(t *testing.T) {
	got := sipfront.ParseHostports("udp/10.0.0.5:5060, TCP/[2001:db8::1]:5061,bogus,tls/1.2.3.4,wss/1.2.3.4:99999,ws/1.2.3.4:-1,wss/203.0.113.10:8443")
	want := []sipfront.Hostport{
		{Transport: "udp", Host: "10.0.0.5", Port: 5060},
		{Transport: "tcp", Host: "2001:db8::1", Port: 5061},
		{Transport: "wss", Host: "203.0.113.10", Port: 8443},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if s := sipfront.JoinHostports(want); s != "udp/10.0.0.5:5060,tcp/[2001:db8::1]:5061,wss/203.0.113.10:8443" {
		t.Fatalf("JoinHostports = %q", s)
	}
}

func TestAddressFor(t *testing.T) {
	const list = "udp/1.2.3.4:5060,tcp/1.2.3.4:5070,tls/[2001:db8::1]:5061"
	for transport, want := range map[string]string{"udp": "1.2.3.4:5060", "tcp": "1.2.3.4:5070", "tls": "[2001:db8::1]:5061", "wss": "1.2.3.4:5060"} {
		if got := sipfront.AddressFor(list, transport); got != want {
			t.Errorf("AddressFor(%s) = %q, want %q", transport, got, want)
		}
	}
	if got := sipfront.AddressFor("tcp/1.2.3.4:5070", "wss"); got != "" {
		t.Errorf("no udp entry: %q, want empty", got)
	}
}
