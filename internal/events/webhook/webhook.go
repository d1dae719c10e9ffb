// Package webhook POSTs registration events to REGISTRATION_EVENTS_WEBHOOK_URL
// in batches (a JSON array), signed like the registration webhook
// (Jambonz-Signature), from a bounded queue: while the receiver is down the
// batch in hand is retried with exponential backoff, events beyond the
// queue are dropped and counted, and nothing ever waits on the receiver
// but this sender's own goroutine.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/auth"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/events"
)

// Options configure a Sender.
type Options struct {
	URL string
	// Secret signs each body (Jambonz-Signature); empty: unsigned.
	Secret    string
	UserAgent string
	// Queue bounds the events waiting (default 10000); Batch bounds one
	// POST (default 100); Flush is the longest an event waits for others
	// to join its batch (default 1 s).
	Queue int
	Batch int
	Flush time.Duration
	// Timeout bounds one POST (default 5 s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of a batch
	// (default 500 ms, 30 s).
	RetryMin, RetryMax time.Duration
	Metrics            *events.Metrics
	Log                *slog.Logger
	Now                func() time.Time
}

// Sender is the webhook sink of the event stream.
type Sender struct {
	opts   Options
	q      chan []byte
	client *http.Client
}

// New checks the URL and returns a sender; call Run.
func New(opts Options) (*Sender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: %q is not an http(s) URL", opts.URL)
	}
	if opts.Queue <= 0 {
		opts.Queue = 10000
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.Flush <= 0 {
		opts.Flush = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 500 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(30*time.Second, opts.RetryMin)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sender{opts: opts, q: make(chan []byte, opts.Queue), client: &http.Client{Timeout: opts.Timeout}}, nil
}

// Enqueue implements events.Sink: it never blocks; a full queue drops the
// event and counts it.
func (s *Sender) Enqueue(raw []byte) {
	select {
	case s.q <- raw:
	default:
		s.opts.Metrics.Dropped("webhook", "queue_full")
	}
}

// Run sends batches until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for {
		var first []byte
		select {
		case <-ctx.Done():
			return
		case first = <-s.q:
		}
		batch := [][]byte{first}
		flush := time.NewTimer(s.opts.Flush)
	fill:
		for len(batch) < s.opts.Batch {
			select {
			case raw := <-s.q:
				batch = append(batch, raw)
			case <-flush.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		flush.Stop()
		s.sendWithRetry(ctx, batch)
	}
}

// sendWithRetry posts the batch until it is accepted, refused (4xx other
// than 408 and 429: dropped and counted) or ctx ends.
func (s *Sender) sendWithRetry(ctx context.Context, batch [][]byte) {
	body := encode(batch)
	wait := s.opts.RetryMin
	failing := false
	for {
		if ctx.Err() != nil {
			s.opts.Metrics.DroppedN("webhook", "shutdown", len(batch))
			return
		}
		status, err := s.post(ctx, body)
		switch {
		case err == nil && status/100 == 2:
			s.opts.Metrics.WebhookRequest("ok")
			if failing {
				s.opts.Log.Info("events webhook: delivering again", "url", s.opts.URL)
			}
			return
		case err == nil && status >= 400 && status < 500 && status != 408 && status != 429:
			s.opts.Metrics.WebhookRequest("refused")
			s.opts.Metrics.DroppedN("webhook", "refused", len(batch))
			s.opts.Log.Warn("events webhook: batch refused, dropped", "url", s.opts.URL, "status", status, "events", len(batch))
			return
		}
		s.opts.Metrics.WebhookRequest("retry")
		if !failing {
			failing = true
			s.opts.Log.Warn("events webhook: delivery failed, retrying with backoff", "url", s.opts.URL, "status", status, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, s.opts.RetryMax)
	}
}

// encode joins encoded events into a JSON array.
func encode(batch [][]byte) []byte {
	n := 2
	for _, raw := range batch {
		n += len(raw) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, '[')
	for i, raw := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, raw...)
	}
	return append(body, ']')
}

func (s *Sender) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.opts.Secret != "" {
		req.Header.Set("Jambonz-Signature", auth.Sign(s.opts.Secret, s.opts.Now(), body))
	}
	if s.opts.UserAgent != "" {
		req.Header.Set("User-Agent", s.opts.UserAgent)
	}
	res, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return 0, err
		}
		return 0, fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode, nil
}
