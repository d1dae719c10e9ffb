package drachtio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

const optionsRequest = "s-41|sip|network|263|udp|198.51.100.23|5060|14:03:27.512345|4c1b2e9a-8d3f-4e21-9b7c-5a6d0e1f2a3b||10.0.0.5|5060|\r\n" +
	"OPTIONS sip:10.0.0.5:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK74bf9;rport=5060\r\n" +
	"From: <sip:ping@198.51.100.23>;tag=9fxced76sl\r\n" +
	"To: <sip:10.0.0.5:5060>\r\n" +
	"Call-ID: 3848276298220188511@198.51.100.23\r\n" +
	"CSeq: 1 OPTIONS\r\n" +
	"Max-Forwards: 70\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

const optionsAnswer = "c-7|sip|4c1b2e9a-8d3f-4e21-9b7c-5a6d0e1f2a3b|\r\n" +
	"SIP/2.0 200 OK\r\n" +
	"Call-ID: 3848276298220188511@198.51.100.23\r\n" +
	"cseq: 1 OPTIONS\r\n" +
	"from: <sip:ping@198.51.100.23>;tag=9fxced76sl\r\n" +
	"to: <sip:10.0.0.5:5060>\r\n" +
	"allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

// The examples of the protocol document, with its byte counts.
var docFrames = []struct {
	name, frame string
}{
	{"authenticate", "23#c-1|authenticate|cymru|"},
	{"authenticate OK", "107#s-1|response|c-1|OK|udp/203.0.113.10:5060,tcp/203.0.113.10:5060|v0.9.10|udp/10.0.0.5:5060,tcp/10.0.0.5:5060"},
	{"authenticate NO", "36#s-1|response|c-1|NO|incorrect secret"},
	{"route register", "18#c-2|route|register"},
	{"route options", "17#c-3|route|options"},
	{"route OK", "19#s-2|response|c-2|OK"},
	{"ping", "8#c-4|ping"},
	{"pong", "24#s-9|response|c-4|OK|pong"},
	{"incoming OPTIONS", "389#" + optionsRequest},
	{"200 to OPTIONS", "259#" + optionsAnswer},
}

func TestFrame_DocExamplesHaveDocByteCounts(t *testing.T) {
	for _, tc := range docFrames {
		t.Run(tc.name, func(t *testing.T) {
			_, payload, _ := strings.Cut(tc.frame, "#")
			if got := string(AppendFrame(nil, payload)); got != tc.frame {
				t.Errorf("AppendFrame = %q, want %q", got[:20], tc.frame[:20])
			}
		})
	}
}

func TestFrameReader_SplitAndCoalescedReads(t *testing.T) {
	var stream bytes.Buffer
	for _, tc := range docFrames {
		stream.WriteString(tc.frame)
	}
	for name, r := range map[string]func() io.Reader{
		"one read holds every frame": func() io.Reader { return bytes.NewReader(stream.Bytes()) },
		"one byte per read":          func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream.Bytes())) },
		"half reads":                 func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream.Bytes())) },
	} {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(r(), 0, 0)
			for _, tc := range docFrames {
				p, err := fr.Next()
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				_, want, _ := strings.Cut(tc.frame, "#")
				if string(p) != want {
					t.Fatalf("%s: got %q", tc.name, p)
				}
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("after last frame: %v, want EOF", err)
			}
		})
	}
}

func TestFrameReader_LengthIsInBytes(t *testing.T) {
	payload := "s-1|sip|network|\r\nMESSAGE sip:x SIP/2.0\r\nSubject: café ☕\r\n\r\n"
	frame := AppendFrame(nil, payload)
	if !strings.HasPrefix(string(frame), "63#") || utf8.RuneCountInString(payload) != 60 { // 60 characters, 63 bytes
		t.Fatalf("prefix of %q", frame[:4])
	}
	fr := NewFrameReader(bytes.NewReader(append(frame, AppendFrame(nil, "s-2|x")...)), 0, 0)
	for _, want := range []string{payload, "s-2|x"} {
		p, err := fr.Next()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
}

func TestFrameReader_Malformed(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"letter in length", "1a#xx", ErrMalformedFrame},
		{"empty length", "#abc", ErrMalformedFrame},
		{"too many digits", "1234567890#", ErrMalformedFrame},
		{"over the size limit", "999999999#", ErrMalformedFrame},
		{"stream ends in the prefix", "12", io.ErrUnexpectedEOF},
		{"stream ends in the payload", "10#abc", io.ErrUnexpectedEOF},
		{"space before hash", "3 #abc", ErrMalformedFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFrameReader(strings.NewReader(tc.in), 1<<20, 0).Next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseMessage_LeaderAndSIP(t *testing.T) {
	m := ParseMessage([]byte(optionsRequest))
	if m.Type() != "sip" || m.Field(2) != "network" || m.Field(5) != "198.51.100.23" || m.Field(8) != "4c1b2e9a-8d3f-4e21-9b7c-5a6d0e1f2a3b" || m.Field(10) != "10.0.0.5" {
		t.Fatalf("fields = %q", m.Fields)
	}
	if len(m.Fields) != 13 || m.Field(12) != "" || m.Field(40) != "" {
		t.Fatalf("trailing pipe: %d fields", len(m.Fields))
	}
	if !strings.HasPrefix(m.SIP, "OPTIONS sip:10.0.0.5:5060 SIP/2.0\r\n") || len(m.SIP) != 275 {
		t.Fatalf("SIP text (%d bytes) = %q", len(m.SIP), m.SIP[:20])
	}
	if m.Payload() != optionsRequest {
		t.Fatal("Payload does not round-trip")
	}
	pong := ParseMessage([]byte("s-9|response|c-4|OK|pong"))
	if pong.SIP != "" || pong.Field(2) != "c-4" || pong.Field(4) != "pong" {
		t.Fatalf("pong = %+v", pong)
	}
}
