package sipfront_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/fronttest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront/sipmsg"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// request parses raw into a Request as a front would hand it over.
func request(t *testing.T, raw string) *sipfront.Request {
	t.Helper()
	msg, err := sipmsg.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &sipfront.Request{Msg: msg.(*sip.Request), Source: netip.MustParseAddrPort("192.0.2.1:5060"), Transport: "udp"}
}

func register(t *testing.T, id string) *sipfront.Request {
	return request(t, fronttest.Register(id, "<sip:john@jambonz.org>"))
}

// wire is a front's ResponseWriter: it records what would go on the wire.
type wire struct {
	mu     sync.Mutex
	sent   []*sipfront.Response
	closed bool
}

func (w *wire) Respond(_ context.Context, r *sipfront.Response) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, r)
	return nil
}

func (w *wire) CloseConn() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return nil
}

// only returns the one answer sent, failing unless exactly one was.
func (w *wire) only(t *testing.T) *sipfront.Response {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sent) != 1 {
		t.Fatalf("%d answers sent, want 1: %+v", len(w.sent), w.sent)
	}
	return w.sent[0]
}

// stats records what the loop reports.
type stats struct {
	mu  sync.Mutex
	got []sipfront.RequestStats
}

func (s *stats) ObserveRequest(r sipfront.RequestStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
}

func (s *stats) last(t *testing.T) sipfront.RequestStats {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		t.Fatal("nothing observed")
	}
	return s.got[len(s.got)-1]
}

func newLoop(h sipfront.HandlerFunc, o sipfront.LoopOptions) (*sipfront.Loop, *stats) {
	st := &stats{}
	o.Observer = st
	return sipfront.NewLoop(h, quiet(), o), st
}

func answer(code int) sipfront.HandlerFunc {
	return func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
		_ = w.Respond(ctx, &sipfront.Response{Code: code})
	}
}

// TestLoop_OneAnswerWhateverTheHandlerDoes: exactly one answer reaches the
// front, and the observer learns how the request ended.
func TestLoop_OneAnswerWhateverTheHandlerDoes(t *testing.T) {
	cases := []struct {
		name    string
		h       sipfront.HandlerFunc
		code    int
		outcome sipfront.Outcome
	}{
		{"answers", answer(401), 401, sipfront.OutcomeHandled},
		{"drops", answer(sipfront.NoAnswer), sipfront.NoAnswer, sipfront.OutcomeHandled},
		{"answers nothing", func(context.Context, sipfront.ResponseWriter, *sipfront.Request) {}, 500, sipfront.OutcomeUnanswered},
		{"panics", func(context.Context, sipfront.ResponseWriter, *sipfront.Request) { panic("boom") }, 500, sipfront.OutcomePanicked},
		{"panics after answering", func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
			answer(200)(ctx, w, r)
			panic("late")
		}, 200, sipfront.OutcomePanicked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, st := newLoop(c.h, sipfront.LoopOptions{MaxInFlight: 1})
			for i := 0; i < 2; i++ { // the second time: the first gave its slot back
				w := &wire{}
				l.ServeSIP(context.Background(), w, register(t, c.name))
				if res := w.only(t); res.Code != c.code {
					t.Fatalf("request %d: sent %d, want %d", i+1, res.Code, c.code)
				}
				if s := st.last(t); s.Outcome != c.outcome || s.Code != c.code || s.Method != "REGISTER" {
					t.Fatalf("request %d: observed %+v, want %s %d", i+1, s, c.outcome, c.code)
				}
			}
			if n := l.InFlight(); n != 0 {
				t.Fatalf("%d in flight after the answers", n)
			}
		})
	}
}

// TestLoop_RefusedAnswers: a second answer is not sent, and a provisional
// one does not count as the answer.
func TestLoop_RefusedAnswers(t *testing.T) {
	for _, c := range []struct {
		name          string
		first, second int
		refused, sent int // which Respond fails; the code that goes out
	}{
		{"second answer", 404, 200, 2, 404},
		{"provisional answer", 100, 200, 1, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			var errs [2]error
			l, _ := newLoop(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
				errs[0] = w.Respond(ctx, &sipfront.Response{Code: c.first})
				errs[1] = w.Respond(ctx, &sipfront.Response{Code: c.second})
			}, sipfront.LoopOptions{})
			w := &wire{}
			l.ServeSIP(context.Background(), w, register(t, "twice"))
			if res := w.only(t); res.Code != c.sent {
				t.Fatalf("sent %d, want %d", res.Code, c.sent)
			}
			for i, err := range errs {
				if refused := i+1 == c.refused; (err != nil) != refused {
					t.Errorf("Respond %d: %v, want refused=%v", i+1, err, refused)
				}
			}
			if c.refused == 2 && !errors.Is(errs[1], sipfront.ErrAnswered) {
				t.Errorf("second Respond: %v, want ErrAnswered", errs[1])
			}
		})
	}
}

func TestLoop_ConcurrentAnswersOnlyOneSent(t *testing.T) {
	l, _ := newLoop(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = w.Respond(ctx, &sipfront.Response{Code: 200 + i})
			}()
		}
		wg.Wait()
	}, sipfront.LoopOptions{})
	w := &wire{}
	l.ServeSIP(context.Background(), w, register(t, "race"))
	w.only(t)
}

func TestLoop_HandlerGetsDeadline(t *testing.T) {
	var deadline time.Time
	var ok bool
	l, _ := newLoop(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
		deadline, ok = ctx.Deadline()
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	}, sipfront.LoopOptions{RequestTimeout: time.Hour})
	before := time.Now()
	l.ServeSIP(context.Background(), &wire{}, register(t, "deadline"))
	if !ok || deadline.Before(before.Add(59*time.Minute)) {
		t.Fatalf("handler deadline %v (set %v), want about an hour ahead", deadline, ok)
	}
}

// occupy runs n requests that stay in the handler until release is closed;
// it returns once all of them are inside.
func occupy(t *testing.T, l *sipfront.Loop, inside chan struct{}, n int) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.ServeSIP(context.Background(), &wire{}, register(t, "busy"))
		}()
		<-inside
	}
	return &wg
}

func blocking(inside chan<- struct{}, release <-chan struct{}) sipfront.HandlerFunc {
	return func(ctx context.Context, w sipfront.ResponseWriter, r *sipfront.Request) {
		if r.CallID() == "call-busy@127.0.0.1" {
			inside <- struct{}{}
			<-release
		}
		_ = w.Respond(ctx, &sipfront.Response{Code: 200})
	}
}

func TestLoop_OverloadAnswered503(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	l, st := newLoop(blocking(inside, release), sipfront.LoopOptions{MaxInFlight: 2})
	busy := occupy(t, l, inside, 2)
	w := &wire{}
	l.ServeSIP(context.Background(), w, register(t, "overflow"))
	res := w.only(t)
	if res.Code != 503 || res.Get("Retry-After") == "" {
		t.Fatalf("sent %d Retry-After %q, want 503 with Retry-After", res.Code, res.Get("Retry-After"))
	}
	if s := st.last(t); s.Outcome != sipfront.OutcomeOverloaded {
		t.Fatalf("observed %+v", s)
	}
	close(release)
	busy.Wait()
	w2 := &wire{}
	l.ServeSIP(context.Background(), w2, register(t, "later"))
	if res := w2.only(t); res.Code != 200 {
		t.Fatalf("after the load: sent %d, want 200", res.Code)
	}
}

func TestLoop_Strictness(t *testing.T) {
	base := fronttest.Register("strict", "<sip:john@jambonz.org>")
	cases := []struct {
		name   string
		raw    string
		code   int
		reason string
		closed bool
	}{
		{"SIP/3.0", strings.Replace(base, "jambonz.org SIP/2.0", "jambonz.org SIP/3.0", 1), 505, "Only SIP/2.0 is supported", false},
		{"two To", strings.Replace(base, "CSeq:", "t: <sip:mallory@jambonz.org>\r\nCSeq:", 1), 400, "Duplicate To header", false},
		{"two Call-ID", strings.Replace(base, "CSeq:", "i: other\r\nCSeq:", 1), 400, "Duplicate Call-ID header", false},
		{"conflicting Content-Length", strings.Replace(base, "Expires:", "l: 5\r\nExpires:", 1) + "hello", 400, "Conflicting Content-Length headers", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			called := false
			l, st := newLoop(func(ctx context.Context, w sipfront.ResponseWriter, _ *sipfront.Request) {
				called = true
				_ = w.Respond(ctx, &sipfront.Response{Code: 200})
			}, sipfront.LoopOptions{})
			w := &wire{}
			l.ServeSIP(context.Background(), w, request(t, c.raw))
			res := w.only(t)
			if res.Code != c.code || res.Get("X-Reason") != c.reason {
				t.Fatalf("sent %d X-Reason %q, want %d %q", res.Code, res.Get("X-Reason"), c.code, c.reason)
			}
			if called {
				t.Error("the handler saw a refused request")
			}
			if w.closed != c.closed {
				t.Errorf("connection closed = %v, want %v", w.closed, c.closed)
			}
			if s := st.last(t); s.Outcome != sipfront.OutcomeMalformed {
				t.Errorf("observed %+v", s)
			}
		})
	}
}

func TestLoop_DrainWaitsAndRefusesNewRequests(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	l, st := newLoop(blocking(inside, release), sipfront.LoopOptions{DrainTimeout: time.Hour})
	busy := occupy(t, l, inside, 1)
	left := make(chan int64, 1)
	go func() { left <- l.Drain(context.Background()) }()
	for !l.Draining() {
		time.Sleep(time.Millisecond)
	}
	w := &wire{}
	l.ServeSIP(context.Background(), w, register(t, "new"))
	if res := w.only(t); res.Code != 503 || res.Get("Retry-After") == "" {
		t.Fatalf("while draining: sent %d, want 503 with Retry-After", res.Code)
	}
	if s := st.last(t); s.Outcome != sipfront.OutcomeDraining {
		t.Fatalf("observed %+v", s)
	}
	select {
	case n := <-left:
		t.Fatalf("Drain returned (%d left) while a request was in flight", n)
	default:
	}
	close(release)
	busy.Wait()
	if n := <-left; n != 0 {
		t.Fatalf("Drain: %d left, want 0", n)
	}
}

func TestLoop_DrainGivesUpAfterItsTimeout(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	l, _ := newLoop(blocking(inside, release), sipfront.LoopOptions{DrainTimeout: time.Millisecond})
	busy := occupy(t, l, inside, 1)
	if n := l.Drain(context.Background()); n != 1 {
		t.Fatalf("Drain: %d left, want 1", n)
	}
	close(release)
	busy.Wait()
}

func TestOutcome_String(t *testing.T) {
	if s := sipfront.OutcomeOverloaded.String(); s != "overloaded" {
		t.Fatalf("%q", s)
	}
}
