package dnsstub

import (
	"context"
	"slices"
	"testing"
)

func TestResolverAsksTheStub(t *testing.T) {
	s, err := Start("127.0.0.1:0", Records{
		A:   map[string][]string{"gw1.carrier.test": {"127.0.0.51", "127.0.0.52"}},
		SRV: map[string][]SRV{"_sip._udp.carrier.test": {{Priority: 20, Port: 5070, Target: "gw2.carrier.test"}, {Priority: 10, Port: 5060, Target: "gw1.carrier.test"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r := s.Resolver()
	_, srvs, err := r.LookupSRV(ctx, "sip", "udp", "carrier.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != 2 || srvs[0].Target != "gw1.carrier.test." || srvs[0].Port != 5060 || srvs[1].Target != "gw2.carrier.test." {
		t.Fatalf("SRV ordered by priority: %+v %+v", srvs[0], srvs[1])
	}
	ips, err := r.LookupHost(ctx, "gw1.carrier.test")
	slices.Sort(ips)
	if err != nil || !slices.Equal(ips, []string{"127.0.0.51", "127.0.0.52"}) {
		t.Fatalf("LookupHost = %v, %v", ips, err)
	}
	if _, err := r.LookupHost(ctx, "nowhere.carrier.test"); err == nil {
		t.Fatal("unknown name resolved")
	}
}
