package auth

import "testing"

func TestSafeHeaders_ScalarsKeptObjectsDropped(t *testing.T) {
	got := safeHeaders(map[string]any{
		"X-Count": float64(3), "X-Flag": true, "X-Text": "ok",
		"X-Obj": map[string]any{"a": 1}, "X-Null": nil, "X-Bad": "a\r\nVia: x",
	})
	want := map[string]string{"X-Count": "3", "X-Flag": "true", "X-Text": "ok"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
