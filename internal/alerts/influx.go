package alerts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// InfluxOptions configure the InfluxDB writer.
type InfluxOptions struct {
	// URL is the InfluxDB 1.x base URL, e.g. http://host:8086.
	URL string
	// Database is the target database ("alerts").
	Database string
	// QueueSize bounds alerts waiting to be written (0: 1000).
	QueueSize int
	// BatchSize is the most alerts per write (0: 100).
	BatchSize int
	// FlushEvery is the longest an alert waits for a batch (0: 1 s).
	FlushEvery time.Duration
	// Timeout bounds one HTTP write (0: 5 s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Influx writes alerts to InfluxDB 1.x (docs/contract.md#alerts) in batches from
// a bounded queue. Alert never blocks: when the queue is full, or a write
// fails, alerts are dropped and counted.
type Influx struct {
	opts    InfluxOptions
	queue   chan Alert
	http    *http.Client
	log     *slog.Logger
	dropped atomic.Int64
	written atomic.Int64
	now     func() time.Time
}

// NewInflux builds the writer; Run sends the batches.
func NewInflux(opts InfluxOptions) *Influx {
	if opts.Database == "" {
		opts.Database = "alerts"
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Influx{
		opts:  opts,
		queue: make(chan Alert, opts.QueueSize),
		http:  &http.Client{Timeout: opts.Timeout},
		log:   opts.Log.With("component", "influx"),
		now:   time.Now,
	}
}

// InfluxURL is the base URL for JAMBONES_TIME_SERIES_HOST (port 8086 unless
// the value has one).
func InfluxURL(host string) string {
	if strings.Contains(host, "://") {
		return host
	}
	if !strings.Contains(host, ":") {
		host += ":8086"
	}
	return "http://" + host
}

// Alert queues a; it never blocks.
func (w *Influx) Alert(_ context.Context, a Alert) {
	if a.Message == "" {
		a.Message = a.Type
	}
	if a.Message == "" {
		return
	}
	select {
	case w.queue <- a:
	default:
		if n := w.dropped.Add(1); n == 1 || n%1000 == 0 {
			w.log.Warn("influx: alert queue full, dropping alerts", "dropped_total", n)
		}
	}
}

// Dropped is how many alerts were lost (queue full or write failed).
func (w *Influx) Dropped() int64 { return w.dropped.Load() }

// Written is how many alerts InfluxDB accepted.
func (w *Influx) Written() int64 { return w.written.Load() }

// Run writes batches until ctx ends, then flushes what is queued (bounded
// by the write timeout).
func (w *Influx) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.FlushEvery)
	defer t.Stop()
	batch := make([]Alert, 0, w.opts.BatchSize)
	// Writes are bounded by Timeout, not ctx: shutdown must not lose a
	// batch already taken from the queue.
	wctx := context.WithoutCancel(ctx)
	flush := func() {
		if len(batch) > 0 {
			w.write(wctx, batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case a := <-w.queue:
					batch = append(batch, a)
					if len(batch) == w.opts.BatchSize {
						flush()
					}
					continue
				default:
				}
				break
			}
			flush()
			return nil
		case a := <-w.queue:
			batch = append(batch, a)
			if len(batch) == w.opts.BatchSize {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

func (w *Influx) write(ctx context.Context, batch []Alert) {
	var body bytes.Buffer
	ts := w.now().UnixNano()
	for i, a := range batch {
		// Distinct timestamps keep points with the same tags from
		// overwriting each other.
		writeLine(&body, a, ts+int64(i))
	}
	u := strings.TrimRight(w.opts.URL, "/") + "/write?db=" + url.QueryEscape(w.opts.Database) + "&precision=ns"
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, &body)
	if err != nil {
		w.drop(len(batch), err)
		return
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	res, err := w.http.Do(req)
	if err != nil {
		w.drop(len(batch), err)
		return
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode/100 != 2 {
		w.drop(len(batch), fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(msg))))
		return
	}
	w.written.Add(int64(len(batch)))
}

func (w *Influx) drop(n int, err error) {
	total := w.dropped.Add(int64(n))
	w.log.Warn("influx: writing alerts failed, dropped", "count", n, "dropped_total", total, "err", err)
}

// writeLine appends one line-protocol point: measurement alerts, tags
// alert_type/account_sid/service_provider_sid when set, fields message and
// detail.
func writeLine(b *bytes.Buffer, a Alert, ts int64) {
	b.WriteString("alerts")
	for _, t := range [][2]string{{"account_sid", a.AccountSID}, {"alert_type", a.Type}, {"service_provider_sid", a.ServiceProviderSID}} {
		if t[1] != "" {
			b.WriteByte(',')
			b.WriteString(t[0])
			b.WriteByte('=')
			b.WriteString(tagEscaper.Replace(t[1]))
		}
	}
	b.WriteString(" message=")
	b.WriteString(fieldString(a.Message))
	if a.Detail != "" {
		b.WriteString(",detail=")
		b.WriteString(fieldString(a.Detail))
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(ts, 10))
	b.WriteByte('\n')
}

var tagEscaper = strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `, "\n", `\n`, "\r", "")

var fieldEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")

func fieldString(s string) string {
	s = fieldEscaper.Replace(s)
	return `"` + s + `"`
}
