package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// bindings are the shapes the e2e tests store (native and drachtio
// fronts, webhook and clients paths) and strings that exercise every
// escaping rule.
func bindings() []registrar.Binding {
	native := registrar.Binding{
		Contact:    "sip:john@127.0.0.1:5070;transport=udp",
		SBCAddress: "udp/127.0.0.1:16910,tcp/127.0.0.1:16910,tls/127.0.0.1:16911,ws/127.0.0.1:16912,wss/127.0.0.1:16913",
		Protocol:   "udp", Proxy: "sip:127.0.0.1:5070",
		ExpiryTime: 1796000000123, CallID: "3848276298220188511@127.0.0.1", CSeq: 2,
	}
	hook := native
	hook.PrivateSBCAddress = "10.0.0.5:5060"
	hook.CallHook, hook.CallStatusHook = "https://hooks.example.com/call?a=1&b=<2>", "https://hooks.example.com/status"
	hook.AllowDirectAppCalling, hook.AllowDirectQueueCalling, hook.AllowDirectUserCalling = true, true, true
	ws := native
	ws.Contact, ws.Protocol = "sip:abc123@df7jal23ls0d.invalid;transport=ws", "wss"
	escapes := registrar.Binding{
		Contact:    "sip:\"q\"\\b@h\t\r\n\b\f\x00\x1f\x7f",
		SBCAddress: "Zoë ☎ \u2028 \u2029 𝄞",
		Protocol:   "bad \xff\xfe utf8 \xed\xa0\x80",
		Proxy:      "<script>&amp;</script>",
		ExpiryTime: -1, CSeq: 4294967295,
	}
	return []registrar.Binding{native, hook, ws, escapes, {}}
}

// The binding is a contract with the rest of the cluster: the encoder
// writes exactly json.Marshal's bytes.
func TestBindingJSON_SameAsMarshal(t *testing.T) {
	for i, b := range bindings() {
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendBinding(nil, &b); !bytes.Equal(got, want) {
			t.Errorf("binding %d:\n got %s\nwant %s", i, got, want)
		}
		if got := EncodeBinding(&b); !bytes.Equal(got, want) || len(want) > cap(got) {
			t.Errorf("binding %d: EncodeBinding %s (cap %d)", i, got, cap(got))
		}
		if got := AppendBinding([]byte("x"), &b); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("binding %d: appended %s", i, got)
		}
		back, err := DecodeBinding(want)
		if err != nil || back != b && !hasInvalidUTF8(b) {
			t.Errorf("binding %d: decoded %+v, %v", i, back, err)
		}
	}
}

func hasInvalidUTF8(b registrar.Binding) bool {
	return strings.ToValidUTF8(b.Protocol, "") != b.Protocol
}

// A field added to Binding must be added to the codec too.
func TestBindingJSON_EveryField(t *testing.T) {
	typ := reflect.TypeFor[registrar.Binding]()
	var names []string
	for i := range typ.NumField() {
		names = append(names, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	if !reflect.DeepEqual(names, bindingFields) {
		t.Fatalf("Binding's JSON names %v, codec's %v", names, bindingFields)
	}
}

// decodeCases are inputs encoding/json accepts or refuses for a reason
// the decoder must see too.
var decodeCases = []string{
	// accepted
	`{"contact":"sip:a@b","sbcAddress":"udp/1.2.3.4:5060","protocol":"udp","proxy":"sip:1.2.3.4:5060","allow_direct_app_calling":false,"allow_direct_queue_calling":false,"allow_direct_user_calling":false,"expiryTime":1796000000123}`,
	`{"expiryTime":5,"contact":"c","cseq":7,"callId":"x"}`,                     // any order
	` {"contact" : "a" , "other":{"x":[1,2,{"y":null}],"z":"\u00e9"} }` + "\n", // unknown members, whitespace
	`{"contact":"a","contact":"b"}`,                                            // the last wins
	`{"contact":"a","contact":null}`,                                           // null leaves it
	`{"contact":null,"expiryTime":null,"cseq":null,"allow_direct_app_calling":null}`,
	`null`, ` null `, `{}`,
	`{"CONTACT":"a","SbcAddress":"b","callid":"c","ALLOW_DIRECT_APP_CALLING":true}`, // case-insensitive names
	`{"callHoo\u212a":"kelvin","\u017fbcAddress":"long s"}`,                         // Unicode folding
	`{"\u0063ontact":"escaped name"}`,
	`{"contact":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud834\udd1e"}`,
	`{"contact":"\ud800","proxy":"\udc00x","protocol":"\ud800\u0041","callId":"\ud800\ud800"}`, // lone surrogates
	"{\"contact\":\"raw \xff\xfe \xed\xa0\x80 é\"}",                                            // invalid UTF-8 kept as U+FFFD
	`{"contact":"\u003csip:a@b\u003e"}`,
	`{"expiryTime":-9223372036854775808,"cseq":4294967295}`,
	`{"expiryTime":9223372036854775807,"cseq":0}`,
	`{"expiryTime":-0}`,
	`{"other":-0.5e+10,"x":1E-2,"y":[true,false,null,"s",{}],"z":[]}`,
	// refused
	``, ` `, `{`, `}`, `{"contact":"a"`, `{"contact":"a",}`, `{,}`, `{"contact" "a"}`,
	`{"contact":"a"} x`, `{"contact":"a"}{}`, `[]`, `"s"`, `1`, `true`, `nul`, `nulll`,
	`{"contact":1}`, `{"contact":true}`, `{"contact":{}}`, `{"contact":[]}`,
	`{"expiryTime":"5"}`, `{"expiryTime":1.5}`, `{"expiryTime":1e3}`, `{"expiryTime":9223372036854775808}`,
	`{"expiryTime":-9223372036854775809}`, `{"expiryTime":01}`, `{"expiryTime":+1}`, `{"expiryTime":-}`,
	`{"expiryTime":1.}`, `{"expiryTime":.5}`, `{"expiryTime":1e}`,
	`{"cseq":-1}`, `{"cseq":-0}`, `{"cseq":4294967296}`, `{"cseq":1.0}`,
	`{"allow_direct_app_calling":"true"}`, `{"allow_direct_app_calling":1}`, `{"allow_direct_app_calling":tru}`,
	`{"contact":"a\qb"}`, `{"contact":"a\'b"}`, `{"contact":"\u12"}`, `{"contact":"\u12g4"}`, "{\"contact\":\"a\tb\"}",
	`{"contact":"abc`, `{"contact":"abc\`, `{"other":[1,]}`, `{"other":[1 2]}`, `{"other":{"a"}}`, `{"other":{"a":1,}}`,
	`{"other":01}`, `{"other":tru}`, `{"other":'a'}`, `{contact:"a"}`, "\xef\xbb\xbf{}", `{"a":1}` + "\x00",
	`{"contact":"\ud800\u12"}`,
}

// The decoder decodes exactly what json.Unmarshal decodes and refuses
// what it refuses.
func TestBindingJSON_DecodesAsUnmarshal(t *testing.T) {
	for _, in := range decodeCases {
		checkDecode(t, []byte(in))
	}
}

// encoding/json's nesting limit: 10,000 levels, the binding's object
// counting as one.
func TestBindingJSON_Depth(t *testing.T) {
	for _, n := range []int{9998, 9999, 10000} {
		in := `{"other":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
		checkDecode(t, []byte(in))
	}
	in := `{"other":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat("}", 9999) + `}`
	checkDecode(t, []byte(in))
	in = `{"other":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}`
	checkDecode(t, []byte(in))
}

func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	var want registrar.Binding
	wantErr := json.Unmarshal(in, &want)
	show := string(in)
	if len(show) > 80 {
		show = show[:80] + "..."
	}
	for _, name := range []string{"bytes", "string"} {
		var got registrar.Binding
		var err error
		if name == "bytes" {
			got, err = decodeBinding(in)
		} else {
			got, err = decodeBinding(string(in))
		}
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s %q: error %v, encoding/json's %v", name, show, err, wantErr)
		}
		if wantErr == nil && got != want {
			t.Fatalf("%s %q:\n got %+v\nwant %+v", name, show, got, want)
		}
	}
	// The exported function gives encoding/json's error itself.
	_, err := DecodeBinding(in)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: DecodeBinding error %v, encoding/json's %v", show, err, wantErr)
	}
}

func FuzzDecodeBinding(f *testing.F) {
	for _, in := range decodeCases {
		f.Add([]byte(in))
	}
	for _, b := range bindings() {
		raw, _ := json.Marshal(b)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
	})
}

func FuzzAppendBinding(f *testing.F) {
	f.Add("sip:john@127.0.0.1:5070", "udp/127.0.0.1:16910", "", "udp", "sip:127.0.0.1:5070", "", "callid@h", int64(1796000000123), uint32(2), uint8(0))
	f.Add("<\"\\\x00\u2028", "\xff\xed\xa0\x80", "&", "é", "\t", "https://h/?a=1&b=2", "", int64(-1), uint32(0), uint8(7))
	f.Fuzz(func(t *testing.T, contact, sbc, private, proto, proxy, hook, callID string, expiry int64, cseq uint32, flags uint8) {
		b := registrar.Binding{
			Contact: contact, SBCAddress: sbc, PrivateSBCAddress: private, Protocol: proto, Proxy: proxy,
			CallHook: hook, CallStatusHook: hook + contact, CallID: callID, ExpiryTime: expiry, CSeq: cseq,
			AllowDirectAppCalling: flags&1 != 0, AllowDirectQueueCalling: flags&2 != 0, AllowDirectUserCalling: flags&4 != 0,
		}
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got := EncodeBinding(&b)
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		checkDecode(t, got)
	})
}
