package auth

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync"
)

// appendJSON appends p as encoding/json's Marshal writes it (same field
// order, omitempty fields, sorted header names, HTML-safe escaping), without
// reflection: the webhook body is built for every authenticated REGISTER
// and Marshal's map encoding allocated twenty-odd times per call
// (docs/performance.md). TestPayloadJSON_SameAsMarshal and FuzzPayloadJSON
// hold it to Marshal's bytes.
func (p *Payload) appendJSON(b []byte) []byte {
	b = append(b, `{"source_address":`...)
	b = appendJSONString(b, p.SourceAddress)
	b = append(b, `,"source_port":`...)
	b = strconv.AppendInt(b, int64(p.SourcePort), 10)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, p.Method)
	if len(p.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		names := namesPool.Get().(*[]string)
		keys := (*names)[:0]
		for k := range p.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, p.Headers[k])
		}
		clear(keys)
		*names = keys[:0]
		namesPool.Put(names)
		b = append(b, '}')
	}
	b = append(b, `,"expires":`...)
	b = strconv.AppendInt(b, int64(p.Expires), 10)
	for _, f := range [...]struct {
		name, value string
		omitEmpty   bool
	}{
		{`,"scheme":`, p.Scheme, false},
		{`,"username":`, p.Username, false},
		{`,"realm":`, p.Realm, false},
		{`,"nonce":`, p.Nonce, false},
		{`,"uri":`, p.URI, false},
		{`,"algorithm":`, p.Algorithm, false},
		{`,"response":`, p.Response, false},
		{`,"qop":`, p.QOP, true},
		{`,"nc":`, p.NC, true},
		{`,"cnonce":`, p.CNonce, true},
		{`,"opaque":`, p.Opaque, true},
	} {
		if f.omitEmpty && f.value == "" {
			continue
		}
		b = append(b, f.name...)
		b = appendJSONString(b, f.value)
	}
	return append(b, '}')
}

var namesPool = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

// appendJSONString appends s quoted as encoding/json writes it. Printable
// ASCII (what SIP headers and digest fields carry) is escaped here, the
// HTML-sensitive <, > and & as \u003c, \u003e and \u0026 like Marshal does;
// a string with anything else (control characters, non-ASCII, invalid
// UTF-8) is handed to Marshal itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '"':
			esc = `\"`
		case '\\':
			esc = `\\`
		case '<':
			esc = `\u003c`
		case '>':
			esc = `\u003e`
		case '&':
			esc = `\u0026`
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
