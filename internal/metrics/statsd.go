package metrics

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cactus/go-statsd-client/v5/statsd"
)

// Tag is a StatsD tag (name, value).
type Tag = statsd.Tag

// StatsDConfig mirrors the original's STATS_* variables.
type StatsDConfig struct {
	Host       string
	Port       int
	Protocol   string // udp or tcp
	Prefix     string // prepended verbatim, as hot-shots does
	Tags       string // global tags, "k:v,k:v"
	SampleRate float64
	Telegraf   bool // Influx/Telegraf tag format instead of DogStatsD
}

// StatsD sends the original's StatsD metrics. Sending never blocks the
// caller for long and never fails it: metrics are best effort.
type StatsD struct {
	client statsd.Statter
	prefix string
	tags   []Tag
	rate   float32
}

// NewStatsD connects to the StatsD agent (UDP: no round trip; TCP: dialled
// lazily and redialled after an error).
func NewStatsD(c StatsDConfig) (*StatsD, error) {
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	format := statsd.SuffixOctothorpe // DogStatsD "|#k:v", hot-shots' default
	if c.Telegraf {
		format = statsd.InfixComma // "name,k=v:1|c"
	}
	var sender statsd.Sender
	var err error
	if strings.EqualFold(c.Protocol, "tcp") {
		sender = &tcpSender{addr: addr}
	} else if sender, err = statsd.NewSimpleSender(addr); err != nil {
		return nil, fmt.Errorf("metrics: statsd %s: %w", addr, err)
	}
	client, err := statsd.NewClientWithSender(sender, "", format)
	if err != nil {
		return nil, fmt.Errorf("metrics: statsd client: %w", err)
	}
	rate := float32(c.SampleRate)
	if rate <= 0 || rate > 1 {
		rate = 1
	}
	return &StatsD{client: client, prefix: c.Prefix, tags: ParseTags(c.Tags), rate: rate}, nil
}

// ParseTags reads STATS_TAGS: comma-separated k:v (or k=v) pairs.
func ParseTags(s string) []Tag {
	var out []Tag
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			k, v, _ = strings.Cut(p, "=")
		}
		out = append(out, Tag{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func (s *StatsD) with(tags []Tag) []Tag {
	if len(s.tags) == 0 {
		return tags
	}
	return append(append(make([]Tag, 0, len(tags)+len(s.tags)), tags...), s.tags...)
}

// Histogram sends a histogram sample ("|h", as hot-shots' histogram()).
func (s *StatsD) Histogram(name string, v int64, tags ...Tag) {
	if s == nil {
		return
	}
	_ = s.client.Raw(s.prefix+name, strconv.FormatInt(v, 10)+"|h", s.rate, s.with(tags)...)
}

// Gauge sends a gauge.
func (s *StatsD) Gauge(name string, v int64, tags ...Tag) {
	if s == nil {
		return
	}
	_ = s.client.Gauge(s.prefix+name, v, 1, s.with(tags)...)
}

// Count increments a counter.
func (s *StatsD) Count(name string, v int64, tags ...Tag) {
	if s == nil {
		return
	}
	_ = s.client.Inc(s.prefix+name, v, s.rate, s.with(tags)...)
}

// Close closes the connection.
func (s *StatsD) Close() error {
	if s == nil {
		return nil
	}
	return s.client.Close()
}

// tcpSender writes newline-terminated metrics on a TCP connection (the
// cactus client only has a UDP sender; STATS_PROTOCOL=tcp needs this).
type tcpSender struct {
	addr string
	mu   sync.Mutex
	conn net.Conn
	// retryAt delays redialling after a failure, so an agent that is down
	// does not cost every REGISTER a dial timeout.
	retryAt time.Time
}

func (t *tcpSender) Send(data []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		if time.Now().Before(t.retryAt) {
			return 0, fmt.Errorf("metrics: statsd %s unreachable", t.addr)
		}
		c, err := net.DialTimeout("tcp", t.addr, time.Second)
		if err != nil {
			t.retryAt = time.Now().Add(5 * time.Second)
			return 0, fmt.Errorf("metrics: statsd dial %s: %w", t.addr, err)
		}
		t.conn = c
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := t.conn.Write(append(data, '\n'))
	if err != nil {
		t.conn.Close()
		t.conn = nil
		return n, fmt.Errorf("metrics: statsd write: %w", err)
	}
	return n, nil
}

func (t *tcpSender) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}
