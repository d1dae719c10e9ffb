package auth

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/alerts"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// rawHook is a hook server over plain TCP that reads each request and lets
// the test decide what happens next: answer (and keep the connection) or
// close. It counts the requests it read and the connections it accepted.
type rawHook struct {
	ln       net.Listener
	requests atomic.Int32
	conns    atomic.Int32
	closed   chan struct{} // one value per connection the server closed
}

// startRawHook serves every request with serve: it returns false to close
// the connection after the request (the request is counted before).
func startRawHook(t *testing.T, serve func(n int, w io.Writer) bool) *rawHook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &rawHook{ln: ln, closed: make(chan struct{}, 64)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns.Add(1)
			go h.serveConn(c, serve)
		}
	}()
	return h
}

func (h *rawHook) serveConn(c net.Conn, serve func(n int, w io.Writer) bool) {
	defer func() {
		c.Close()
		h.closed <- struct{}{}
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		n := int(h.requests.Add(1))
		if !serve(n, c) {
			return
		}
	}
}

func (h *rawHook) url() string { return "http://" + h.ln.Addr().String() + "/auth" }

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}"

// A hook call carries a nonce count: a request the server received but did
// not answer is never sent again on a new connection, whatever the method.
func TestWebhook_NotSentTwiceWhenServerClosesWithoutAnswer(t *testing.T) {
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			h := startRawHook(t, func(int, io.Writer) bool { return false })
			w, al := newWebhook(2*time.Second, "")
			g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: h.url(), Method: method}, "s"))
			if err != nil {
				t.Fatal(err)
			}
			if g.Status != 503 || g.OK {
				t.Fatalf("grant = %+v, want 503", g)
			}
			// The server counted the request before closing, and the client
			// saw the close only after it: a retry would have been counted.
			if n := h.requests.Load(); n != 1 {
				t.Fatalf("hook received %d requests, want 1", n)
			}
			if a := al.all(); len(a) != 1 || a[0].Type != alerts.WebhookConnectionFailure {
				t.Fatalf("alerts = %+v", a)
			}
		})
	}
}

// The same holds for a POST over a kept-alive connection: the second
// request, read by the server and then dropped, is not sent again on a new
// connection. (A GET is: net/http replays an idempotent request once when a
// reused connection closes before the answer, docs/performance.md.)
func TestWebhook_NotSentTwiceOverReusedConnection(t *testing.T) {
	h := startRawHook(t, func(n int, w io.Writer) bool {
		if n == 1 {
			_, _ = io.WriteString(w, okAnswer)
			return true
		}
		return false
	})
	w, _ := newWebhook(2*time.Second, "")
	hook := &registrar.Webhook{URL: h.url(), Method: "POST"}
	if g, err := w.Authenticate(context.Background(), authRequest(hook, "")); err != nil || !g.OK {
		t.Fatalf("first call: grant %+v err %v", g, err)
	}
	g, err := w.Authenticate(context.Background(), authRequest(hook, ""))
	if err != nil || g.Status != 503 {
		t.Fatalf("second call: grant %+v err %v, want 503", g, err)
	}
	if n, c := h.requests.Load(), h.conns.Load(); n != 2 || c != 1 {
		t.Fatalf("hook received %d requests on %d connections, want 2 on 1", n, c)
	}
}

// Redirects are not followed, for GET hooks too, and answer 503.
func TestWebhook_RedirectNotFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 307, 308} {
		for _, method := range []string{"POST", "GET"} {
			t.Run(method+strconv.Itoa(code), func(t *testing.T) {
				target, redirected := redirectTarget(t)
				srv, requests := hookServer(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target.URL, code)
				})
				w, al := newWebhook(2*time.Second, "")
				var observed []int
				w.Observe = func(_ time.Duration, s int) { observed = append(observed, s) }
				g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: method}, ""))
				if err != nil || g.Status != 503 || g.OK {
					t.Fatalf("grant %+v err %v, want 503", g, err)
				}
				if redirected.Load() || len(requests()) != 1 {
					t.Fatalf("redirect followed (%d requests to the hook)", len(requests()))
				}
				if a := al.all(); len(a) != 1 || a[0].Type != alerts.WebhookFailure || a[0].Detail != strconv.Itoa(code) {
					t.Fatalf("alerts = %+v", a)
				}
				if len(observed) != 1 || observed[0] != code {
					t.Fatalf("observed %v", observed)
				}
			})
		}
	}
}

// An answer over 64 KB is not kept, with or without Content-Length: a 200
// answers 503 without an alert (the hook works, its answer is wrong), any
// other status as that status would.
func TestWebhook_OversizeAnswer(t *testing.T) {
	big := `{"status":"ok","msg":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name      string
		status    int
		chunked   bool
		wantSIP   int
		wantAlert bool
	}{
		{"200 with length", 200, false, 503, false},
		{"200 chunked", 200, true, 503, false},
		{"404 with length", 404, false, 403, true},
		{"500 chunked", 500, true, 503, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := hookServer(t, func(w http.ResponseWriter, _ *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				}
				w.WriteHeader(tt.status)
				if tt.chunked {
					w.(http.Flusher).Flush()
				}
				_, _ = io.WriteString(w, big)
			})
			w, al := newWebhook(2*time.Second, "")
			var observed []int
			w.Observe = func(_ time.Duration, s int) { observed = append(observed, s) }
			g, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: srv.URL, Method: "POST"}, ""))
			if err != nil || g.Status != tt.wantSIP || g.OK {
				t.Fatalf("grant %+v err %v, want %d", g, err, tt.wantSIP)
			}
			a := al.all()
			if tt.wantAlert != (len(a) == 1) || (tt.wantAlert && a[0].Type != alerts.WebhookFailure) || len(a) > 1 {
				t.Fatalf("alerts = %+v", a)
			}
			if len(observed) != 1 || observed[0] != tt.status {
				t.Fatalf("observed %v, want [%d]", observed, tt.status)
			}
		})
	}
}

// The request headers both methods carry, and Basic auth from credentials
// in the hook's URL when the webhook row has none (as net/http did).
func TestWebhook_RequestHeaders(t *testing.T) {
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			srv, requests := hookServer(t, jsonAnswer(`{"status":"ok"}`))
			w, _ := newWebhook(2*time.Second, "")
			u := strings.Replace(srv.URL, "http://", "http://urluser:urlpass@", 1) + "/a//b/../c"
			if _, err := w.Authenticate(context.Background(), authRequest(&registrar.Webhook{URL: u, Method: method}, "")); err != nil {
				t.Fatal(err)
			}
			r := requests()[0]
			for name, want := range map[string]string{
				"Content-Type":  "application/json",
				"Accept":        "application/json",
				"User-Agent":    "Go-http-client/1.1",
				"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("urluser:urlpass")),
			} {
				if got := r.header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if r.path != "/a//b/../c" {
				t.Errorf("path %q: the hook's path must be sent as configured", r.path)
			}
		})
	}
}
