package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrintRegbot_OneRowPerRegistration(t *testing.T) {
	// As the client decodes the server's JSON.
	var res map[string]any
	raw := `{"regbot":{"active":true,"total":2,"registered":1,"token":"x","agents":[
  {"carrier_sid":"c1","aor":"foo@sip.example.com","gateway":"10.0.0.1:5060","state":"registered","last_answer":"200 OK","decision":"refresh","next_attempt":"2026-01-01T00:30:00Z","expires":3600,"failures":0},
  {"carrier_sid":"c2","aor":"bar@sip.example.com","gateway":"10.0.0.2:5060","state":"starting","expires":3600,"failures":0}]}}`
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printRegbot(&b, res)
	out := b.String()
	for _, want := range []string{
		"Role:       leader\nAgents:     2\nRegistered: 1\n",
		"CARRIER  AOR",
		"c1       foo@sip.example.com  10.0.0.1:5060  registered  200 OK       refresh   2026-01-01T00:30:00Z  3600     0",
		"c2       bar@sip.example.com  10.0.0.2:5060  starting    -            -         -                     3600     0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
