package options

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/membership"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/store/memstore"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
)

type recorder struct{ res *sipfront.Response }

func (r *recorder) Respond(_ context.Context, res *sipfront.Response) error {
	r.res = res
	return nil
}

func options(t *testing.T, source string, headers ...string) *sipfront.Request {
	t.Helper()
	raw := "OPTIONS sip:sbc@127.0.0.1:5060 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + source + ";branch=z9hG4bK-1\r\n" +
		"From: <sip:fs@" + source + ">;tag=1\r\n" +
		"To: <sip:sbc@127.0.0.1>\r\n" +
		"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
	for _, h := range headers {
		raw += h + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &sipfront.Request{Msg: msg.(*sip.Request), Source: netip.MustParseAddrPort(source), Transport: "udp"}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestServeSIP_CheckInsUpdateSetsAndAnswerMembers(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	defer rdb.Close()
	ctx := context.Background()
	const cluster = "t-options"
	keys := []string{cluster + ":active-fs", cluster + ":active-rtp", cluster + ":fs-service-url", cluster + ":drained-fs",
		cluster + ":active-fs:lastseen", cluster + ":active-rtp:lastseen", cluster + ":fs-service-url:lastseen"}
	rdb.Del(ctx, keys...)
	t.Cleanup(func() { rdb.Del(ctx, keys...) })
	h := New(membership.New(testenv.RueidisClient(t, testenv.Redis(t)), cluster, time.Minute, quiet()), nil, quiet())

	steps := []struct {
		name        string
		source      string
		headers     []string
		wantMembers string // "" = no X-Members header
		wantFS      string
		wantRTP     string
		wantURLs    string
	}{
		{"plain keepalive", "10.0.0.9:5060", nil, "", "", "", ""},
		{"fs open", "10.0.0.1:5060", []string{"X-FS-Status: open", "X-FS-ServiceUrl: http://10.0.0.1:3000"}, "1",
			"10.0.0.1:5060", "", "http://10.0.0.1:3000"},
		{"rtp open", "10.0.0.5:22222", []string{"X-RTP-Status: open"}, "1", "10.0.0.1:5060", "10.0.0.5", "http://10.0.0.1:3000"},
		{"second fs", "10.0.0.2:5060", []string{"X-FS-Status: open"}, "2", "10.0.0.1:5060,10.0.0.2:5060", "10.0.0.5", "http://10.0.0.1:3000"},
		{"fs repeats", "10.0.0.2:5060", []string{"X-FS-Status: open"}, "2", "10.0.0.1:5060,10.0.0.2:5060", "10.0.0.5", "http://10.0.0.1:3000"},
		{"fs closed", "10.0.0.1:5060", []string{"X-FS-Status: closed", "X-FS-ServiceUrl: http://10.0.0.1:3000"}, "1",
			"10.0.0.2:5060", "10.0.0.5", ""},
		{"rtp closed", "10.0.0.5:22222", []string{"X-RTP-Status: closed"}, "0", "10.0.0.2:5060", "", ""},
	}
	for _, st := range steps {
		w := &recorder{}
		h.ServeSIP(ctx, w, options(t, st.source, st.headers...))
		if w.res == nil || w.res.Code != 200 {
			t.Fatalf("%s: response %+v, want 200", st.name, w.res)
		}
		if got := w.res.Get("X-Members"); got != st.wantMembers {
			t.Errorf("%s: X-Members = %q, want %q", st.name, got, st.wantMembers)
		}
		for set, want := range map[string]string{"active-fs": st.wantFS, "active-rtp": st.wantRTP, "fs-service-url": st.wantURLs} {
			m, _ := rdb.SMembers(ctx, cluster+":"+set).Result()
			sort.Strings(m)
			if got := strings.Join(m, ","); got != want {
				t.Errorf("%s: %s = %q, want %q", st.name, set, got, want)
			}
		}
	}

	// A drained feature server checking in is treated as closed.
	rdb.SAdd(ctx, cluster+":drained-fs", "10.0.0.2")
	w := &recorder{}
	h.ServeSIP(ctx, w, options(t, "10.0.0.2:5060", "X-FS-Status: open"))
	if w.res.Code != 200 || w.res.Get("X-Members") != "0" {
		t.Errorf("drained check-in: %+v, want 200 X-Members 0", w.res)
	}
}

func TestServeSIP_RedisFailureAnswers503(t *testing.T) {
	h := New(membership.New(testenv.RueidisClient(t, "127.0.0.1:1"), "x", time.Minute, quiet()), nil, quiet())
	for _, hdr := range []string{"X-FS-Status: open", "X-FS-Status: closed", "X-RTP-Status: open"} {
		w := &recorder{}
		h.ServeSIP(context.Background(), w, options(t, "10.0.0.1:5060", hdr))
		if w.res == nil || w.res.Code != 503 {
			t.Errorf("%s: response %+v, want 503", hdr, w.res)
		}
	}
	// Keepalives do not touch Redis.
	w := &recorder{}
	h.ServeSIP(context.Background(), w, options(t, "10.0.0.1:5060"))
	if w.res.Code != 200 {
		t.Errorf("keepalive: %+v, want 200", w.res)
	}
}

func TestOptions_CheckInFromUntrustedSourceIgnored(t *testing.T) {
	kv, err := memstore.Open(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sets := membership.NewEmbedded(kv, "default", time.Minute, quiet())
	private := netip.MustParsePrefix("10.0.0.0/8")
	h := New(sets, private.Contains, quiet())
	for _, tc := range []struct {
		src         string
		wantMembers bool
	}{
		{"203.0.113.5:5060", false},
		{"10.1.2.3:5060", true},
	} {
		msg, err := sip.ParseMessage([]byte("OPTIONS sip:sbc SIP/2.0\r\nVia: SIP/2.0/UDP " + tc.src + ";branch=z9hG4bK1\r\n" +
			"From: <sip:fs@x>;tag=1\r\nTo: <sip:sbc>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nX-FS-Status: open\r\nContent-Length: 0\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		w := &recorder{}
		h.ServeSIP(context.Background(), w, &sipfront.Request{Msg: msg.(*sip.Request), Source: netip.MustParseAddrPort(tc.src), Transport: "udp"})
		if w.res == nil || w.res.Code != 200 {
			t.Fatalf("%s: answer %+v, want 200", tc.src, w.res)
		}
		if got := w.res.Get("X-Members") != ""; got != tc.wantMembers {
			t.Errorf("%s: X-Members present = %v, want %v", tc.src, got, tc.wantMembers)
		}
	}
	if m, _ := sets.Members(context.Background(), membership.ActiveFS); len(m) != 1 || m[0] != "10.1.2.3:5060" {
		t.Errorf("active-fs = %v, want only the private server", m)
	}
}
