// Package events is the stream of registration events (docs/events.md): who
// registered, refreshed, left or expired, and which REGISTERs failed
// authentication or were rejected.
//
// The registrar hands each outcome to a Publisher (Service), which never
// blocks a REGISTER: events go through a bounded queue to a Backend (Redis
// pub/sub in a cluster, the in-process Bus with the embedded store) and,
// optionally, to an HTTP webhook. With Redis, the event of a binding write
// rides on the write's own round trip instead (Inline). Expiries are found by a periodic sweep
// that claims expired members of the `active-user` sorted set atomically,
// so that with several instances each expiry is reported once.
package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/jsonwire"
)

// Type is the kind of an event; its string is the JSON "type".
type Type string

// The event types (docs/events.md).
const (
	Register   Type = "register"
	Refresh    Type = "refresh"
	Unregister Type = "unregister"
	Expire     Type = "expire"
	AuthFailed Type = "auth-failed"
	Rejected   Type = "rejected"
)

// Types lists every type, in documentation order.
var Types = []Type{Register, Refresh, Unregister, Expire, AuthFailed, Rejected}

// ParseType returns the type named s.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return "", fmt.Errorf("unknown event type %q (one of %s)", s, strings.Join(names, ", "))
}

// Event is one occurrence. Its JSON encoding is a stable contract
// (docs/events.md): fields are only ever added. It never carries secrets:
// no password, digest response, nonce or webhook credentials. AppendJSON
// writes it: a field added here is added there too (a test says so).
type Event struct {
	Type       Type   `json:"type"`
	Time       Millis `json:"time"`
	AoR        string `json:"aor,omitempty"`
	Realm      string `json:"realm,omitempty"`
	AccountSID string `json:"account_sid,omitempty"`
	Contact    string `json:"contact,omitempty"`
	Source     string `json:"source,omitempty"` // ip:port the REGISTER came from
	Transport  string `json:"transport,omitempty"`
	SBCAddress string `json:"sbc_address,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
	// Expires is the binding's lifetime in seconds from Time (register,
	// refresh, expire), 0 for unregister, the requested one otherwise.
	Expires int    `json:"expires"`
	CallID  string `json:"call_id,omitempty"`
	Reason  string `json:"reason,omitempty"`

	// BindingExpiry is set (ms since epoch) when the REGISTER wrote the
	// binding: the expiry sweep then knows what to report when it lapses.
	BindingExpiry int64 `json:"-"`
}

// AppendJSON appends e's JSON, byte for byte as json.Marshal(e) writes it
// (field order, omitted empty fields, escaping), without reflection: an
// event is encoded for every binding write (docs/performance.md, "JSON of
// the binding and the event"). TestEventJSON_SameAsMarshal and
// FuzzEventJSON hold it to Marshal's bytes.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = jsonwire.AppendString(dst, string(e.Type))
	dst = append(dst, `,"time":`...)
	dst = e.Time.appendJSON(dst)
	for _, f := range [...]struct{ name, value string }{
		{`,"aor":`, e.AoR},
		{`,"realm":`, e.Realm},
		{`,"account_sid":`, e.AccountSID},
		{`,"contact":`, e.Contact},
		{`,"source":`, e.Source},
		{`,"transport":`, e.Transport},
		{`,"sbc_address":`, e.SBCAddress},
		{`,"user_agent":`, e.UserAgent},
	} {
		if f.value != "" {
			dst = append(dst, f.name...)
			dst = jsonwire.AppendString(dst, f.value)
		}
	}
	dst = append(dst, `,"expires":`...)
	dst = jsonwire.AppendInt(dst, int64(e.Expires))
	if e.CallID != "" {
		dst = append(dst, `,"call_id":`...)
		dst = jsonwire.AppendString(dst, e.CallID)
	}
	if e.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = jsonwire.AppendString(dst, e.Reason)
	}
	return append(dst, '}')
}

// Millis is a time encoded as RFC 3339 in UTC with milliseconds.
type Millis time.Time

// MillisLayout is the layout of Millis.
const MillisLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON implements json.Marshaler.
func (m Millis) MarshalJSON() ([]byte, error) {
	return m.appendJSON(make([]byte, 0, len(MillisLayout)+2)), nil
}

// appendJSON appends the JSON string of m (digits, -, :, T, . and Z only:
// nothing json.Marshal would escape).
func (m Millis) appendJSON(dst []byte) []byte {
	dst = append(dst, '"')
	dst = time.Time(m).UTC().AppendFormat(dst, MillisLayout)
	return append(dst, '"')
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Millis) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("events: time: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("events: time: %w", err)
	}
	*m = Millis(t)
	return nil
}

// Publisher receives events. Publish must never block.
type Publisher interface {
	Publish(e Event)
}

// Filter selects events of some types and/or one realm (empty: all).
type Filter struct {
	Types []Type
	Realm string
}

// Match reports whether the event of type t in realm passes the filter.
func (f Filter) Match(t Type, realm string) bool {
	if f.Realm != "" && !strings.EqualFold(f.Realm, realm) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, want := range f.Types {
		if want == t {
			return true
		}
	}
	return false
}

// MatchJSON applies the filter to an encoded event.
func (f Filter) MatchJSON(raw []byte) bool {
	if len(f.Types) == 0 && f.Realm == "" {
		return true
	}
	var head struct {
		Type  Type   `json:"type"`
		Realm string `json:"realm"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return false
	}
	return f.Match(head.Type, head.Realm)
}

// RealmOf returns the realm of an AoR (user@realm).
func RealmOf(aor string) string {
	if i := strings.LastIndexByte(aor, '@'); i >= 0 {
		return aor[i+1:]
	}
	return ""
}
