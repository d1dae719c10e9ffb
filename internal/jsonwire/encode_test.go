package jsonwire

import (
	"bytes"
	"encoding/json"
	"testing"
)

var strs = []string{
	"", "plain sip:john@127.0.0.1:5070", `"quoted" \back\slash/`, "<script>&amp;</script>",
	"\x00\x01\b\f\n\r\t\x1f\x7f", "Zoë ☎ 𝄞", "\u2028 \u2029", "bad \xff\xfe \xed\xa0\x80 \xf0\x9f\x98", "\xc3",
}

// AppendString writes exactly what json.Marshal writes for a Go string.
func TestAppendString_SameAsMarshal(t *testing.T) {
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
	for _, n := range []int64{0, -1, 1 << 62, -1 << 63} {
		want, _ := json.Marshal(n)
		if got := AppendInt(nil, n); !bytes.Equal(got, want) {
			t.Errorf("%d: got %s", n, got)
		}
	}
	want, _ := json.Marshal(uint64(1<<64 - 1))
	if got := AppendUint(nil, 1<<64-1); !bytes.Equal(got, want) {
		t.Errorf("max uint64: got %s", got)
	}
	for _, v := range []bool{false, true} {
		want, _ := json.Marshal(v)
		if got := AppendBool(nil, v); !bytes.Equal(got, want) {
			t.Errorf("%v: got %s", v, got)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range strs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// What a string reads back as: encoding/json's unquoting, for input it
// accepts, and an error for input it refuses.
func FuzzReadString(f *testing.F) {
	for _, s := range strs {
		q, _ := json.Marshal(s)
		f.Add(string(q))
	}
	for _, s := range []string{`"\ud834\udd1e"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00"`, `"\ud800\ud800"`, `"\'"`, `"\u12"`, "\"\x7f\xff\"", `"a`, `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want string
		wantErr := json.Unmarshal([]byte(in), &want)
		r := NewReader(in)
		var got string
		if r.peek() != '"' {
			t.Skip()
		}
		s, ok := r.str(nil)
		if ok {
			got = string(s)
			r.ws()
			if r.off != len(in) {
				ok = false
			}
		}
		if ok != (wantErr == nil) || ok && got != want {
			t.Fatalf("%q: got %q, %v; encoding/json %q, %v", in, got, ok, want, wantErr)
		}
	})
}
