package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// sample are the events the e2e tests publish (register through the
// native front, refresh, unregister, a refusal) and strings exercising
// every escaping rule.
func sample() []Event {
	at := Millis(time.Date(2026, 11, 29, 20, 1, 2, 345_678_901, time.FixedZone("x", 3600)))
	reg := Event{
		Type: Register, Time: at, AoR: "john@jambonz.org", Realm: "jambonz.org",
		AccountSID: "ed649e33-e771-403a-8c99-1780eabbc803", Contact: "sip:john@127.0.0.1:5070;transport=udp",
		Source: "127.0.0.1:5070", Transport: "udp",
		SBCAddress: "udp/127.0.0.1:16910,tcp/127.0.0.1:16910,tls/127.0.0.1:16911,ws/127.0.0.1:16912,wss/127.0.0.1:16913",
		UserAgent:  "sipp <3.7> & friends", Expires: 3600, CallID: "1-2@127.0.0.1", BindingExpiry: 1796000000123,
	}
	refresh := reg
	refresh.Type, refresh.UserAgent = Refresh, "Zoë ☎ \u2028\u2029 \xff\xed\xa0\x80 \x00\x1f\x7f \"\\"
	unreg := Event{Type: Unregister, Time: at, AoR: "john@jambonz.org", Realm: "jambonz.org"}
	failed := Event{Type: AuthFailed, Time: Millis(time.Time{}), AoR: "x@y", Expires: -1, Reason: "bad password <x>"}
	far := Event{Type: Expire, Time: Millis(time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)), Reason: "\t"}
	early := Event{Type: Rejected, Time: Millis(time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC))}
	return []Event{reg, refresh, unreg, failed, far, early, {}}
}

// Events are a contract with subscribers and webhooks (docs/events.md):
// the encoder writes exactly json.Marshal's bytes.
func TestEventJSON_SameAsMarshal(t *testing.T) {
	for i, e := range sample() {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
		}
		if got := e.AppendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("event %d: appended %s", i, got)
		}
	}
}

// The record kept for an expiry event is record{expiry, event} as Marshal
// writes it, and the event beside it is the event alone.
func TestEncode_SameAsMarshal(t *testing.T) {
	for i, e := range sample() {
		raw, rec := encode(&e)
		want, _ := json.Marshal(e)
		if !bytes.Equal(raw, want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, raw, want)
		}
		if e.BindingExpiry <= 0 {
			if rec != nil {
				t.Errorf("event %d: a record without a binding: %s", i, rec)
			}
			continue
		}
		wantRec, err := json.Marshal(record{Expiry: e.BindingExpiry, Event: want})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec, wantRec) {
			t.Errorf("event %d record:\n got %s\nwant %s", i, rec, wantRec)
		}
		// The event's slice cannot grow into the record.
		_ = append(raw, "garbage"...)
		if !bytes.Equal(rec, wantRec) {
			t.Errorf("event %d: appending to the event changed the record: %s", i, rec)
		}
	}
}

func FuzzEventJSON(f *testing.F) {
	f.Add("register", int64(1796000000123), "john@jambonz.org", "sip:john@127.0.0.1:5070", "sipp <3.7> & co", "", 3600, int64(1796000000123))
	f.Add("auth-failed", int64(-62135596800000), "\xff@\u2028", "\x00\"\\", "é", "bad password", -1, int64(0))
	f.Fuzz(func(t *testing.T, typ string, ms int64, aor, contact, ua, reason string, expires int, expiry int64) {
		e := Event{
			Type: Type(typ), Time: Millis(time.UnixMilli(ms)), AoR: aor, Realm: RealmOf(aor), AccountSID: reason,
			Contact: contact, Source: ua + aor, Transport: typ, SBCAddress: contact + ua, UserAgent: ua,
			Expires: expires, CallID: contact, Reason: reason, BindingExpiry: expiry,
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		raw, rec := encode(&e)
		if !bytes.Equal(raw, want) {
			t.Fatalf("\n got %s\nwant %s", raw, want)
		}
		if expiry > 0 {
			wantRec, _ := json.Marshal(record{Expiry: expiry, Event: want})
			if !bytes.Equal(rec, wantRec) {
				t.Fatalf("record\n got %s\nwant %s", rec, wantRec)
			}
		}
	})
}

// A field added to Event must be added to AppendJSON too: with every field
// set, the two encodings still agree.
func TestEventJSON_EveryField(t *testing.T) {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Struct: // Time
			f.Set(reflect.ValueOf(Millis(time.UnixMilli(1))))
		default:
			t.Fatalf("field %s of kind %s: extend this test and AppendJSON", v.Type().Field(i).Name, f.Kind())
		}
	}
	want, _ := json.Marshal(e)
	if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}
