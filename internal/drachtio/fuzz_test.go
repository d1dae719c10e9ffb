package drachtio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Limits of the reader under fuzzing: small enough that oversized frames
// are reached without allocating megabytes.
const (
	fuzzMaxPayload = 4096
	fuzzMaxDigits  = 9
)

// chunkReader returns at most n bytes per Read, so frames arrive split at
// every possible position across reads.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(r.n, len(p), len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

// referenceFrames splits a whole stream the straightforward way (all bytes
// in memory, no buffering): the payloads, then the error that ends it.
func referenceFrames(data []byte) ([][]byte, error) {
	var out [][]byte
	for {
		if len(data) == 0 {
			return out, io.EOF
		}
		n, digits, i := 0, 0, 0
		for ; i < len(data) && data[i] != '#'; i++ {
			b := data[i]
			if b < '0' || b > '9' {
				return out, ErrMalformedFrame
			}
			digits++
			if digits > fuzzMaxDigits {
				return out, ErrMalformedFrame
			}
			n = n*10 + int(b-'0')
		}
		if i == len(data) {
			return out, io.ErrUnexpectedEOF
		}
		if digits == 0 || n > fuzzMaxPayload {
			return out, ErrMalformedFrame
		}
		data = data[i+1:]
		if len(data) < n {
			return out, io.ErrUnexpectedEOF
		}
		out = append(out, data[:n])
		data = data[n:]
	}
}

// FuzzReadFrame feeds arbitrary bytes, in reads of 1 to 64 bytes, to the
// frame reader: it must never panic, never return more than its limit, and
// split the stream exactly as the reference splitter does, ending with the
// same kind of error. Every payload must also survive ParseMessage.
func FuzzReadFrame(f *testing.F) {
	var stream bytes.Buffer
	for _, tc := range docFrames {
		stream.WriteString(tc.frame)
	}
	f.Add(stream.Bytes(), uint8(0))
	f.Add(stream.Bytes(), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		fr := NewFrameReader(&chunkReader{data: data, n: 1 + int(chunk%64)}, fuzzMaxPayload, fuzzMaxDigits)
		want, wantErr := referenceFrames(data)
		for i := 0; ; i++ {
			p, err := fr.Next()
			if err != nil {
				if i != len(want) {
					t.Fatalf("reader stopped after %d frames (%v), reference read %d", i, err, len(want))
				}
				if !errors.Is(err, wantErr) {
					t.Fatalf("reader ended with %v, reference with %v", err, wantErr)
				}
				return
			}
			if len(p) > fuzzMaxPayload {
				t.Fatalf("payload of %d bytes over the %d limit", len(p), fuzzMaxPayload)
			}
			if i >= len(want) {
				t.Fatalf("frame %d = %q, reference ended after %d frames", i, p, len(want))
			}
			if !bytes.Equal(p, want[i]) {
				t.Fatalf("frame %d = %q, reference %q", i, p, want[i])
			}
			m := ParseMessage(p)
			if len(m.Fields) == 0 {
				t.Fatalf("frame %d: no leader fields", i)
			}
			_ = m.IsResponse()
			_ = m.Field(8)
		}
	})
}
