package credcrypt

import (
	"encoding/json"
	"strings"
	"testing"
)

// Fixed vectors produced independently with the openssl CLI (OpenSSL 3.0),
// the way the api-server stores clients.password (docs/contract.md#encrypted-passwords):
//
//	SECRET='jambonz-test-secret'
//	KEY32=$(printf '%s' "$SECRET" | openssl dgst -sha256 -binary | openssl base64 -A | cut -c1-32)
//	  -> SKcc3WtRzHYC5hzUp1ZwEDqgSGbgUXLd
//	KEYHEX=$(printf '%s' "$KEY32" | xxd -p -c 256)
//	  -> 534b6363335774527a48594335687a5570315a77454471675347626755584c64
//	printf '%s' 'Str0ng P@ss, with comma!' | openssl enc -aes-256-cbc -K $KEYHEX \
//	    -iv 000102030405060708090a0b0c0d0e0f | xxd -p -c 256
//	  -> 47da5357b44c23aae6ce53bc8371983ffc8b62ce30f30d043909f74c02458417
//	printf '%s' '0123456789abcdef' | openssl enc -aes-256-cbc -K $KEYHEX \
//	    -iv f0e1d2c3b4a5968778695a4b3c2d1e0f | xxd -p -c 256
//	  -> fe9b47817930babd0a526ba68ccdab4260366ef3d7adc5ff9735cd621ce12f48
//	printf '%s' 'legacy-pass' | openssl enc -aes-256-ctr -K $KEYHEX \
//	    -iv 000102030405060708090a0b0c0d0e0f | xxd -p -c 256
//	  -> 40143540f4a4a042840651
const (
	testSecret = "jambonz-test-secret"
	testKey32  = "SKcc3WtRzHYC5hzUp1ZwEDqgSGbgUXLd"

	cbcVector      = `{"iv":"000102030405060708090a0b0c0d0e0f","content":"47da5357b44c23aae6ce53bc8371983ffc8b62ce30f30d043909f74c02458417"}`
	cbcVectorPlain = "Str0ng P@ss, with comma!"
	// A plain text of exactly one block gets a whole block of padding.
	cbcBlockVector      = `{"iv":"f0e1d2c3b4a5968778695a4b3c2d1e0f","content":"fe9b47817930babd0a526ba68ccdab4260366ef3d7adc5ff9735cd621ce12f48"}`
	cbcBlockVectorPlain = "0123456789abcdef"
	ctrVector           = `{"iv":"000102030405060708090a0b0c0d0e0f","content":"40143540f4a4a042840651"}`
	ctrVectorPlain      = "legacy-pass"
)

func mustNew(t *testing.T, secret string, legacy bool) *Cipher {
	t.Helper()
	c, err := New(secret, legacy)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestNew_KeyIsFirst32Base64Chars(t *testing.T) {
	c := mustNew(t, testSecret, false)
	if string(c.key) != testKey32 {
		t.Fatalf("key = %q, want %q", c.key, testKey32)
	}
}

func TestNew_EmptySecretRefused(t *testing.T) {
	if _, err := New("", false); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
}

func TestDecrypt_OpenSSLVectors(t *testing.T) {
	tests := []struct {
		name   string
		legacy bool
		in     string
		want   string
	}{
		{"cbc", false, cbcVector, cbcVectorPlain},
		{"cbc whole-block plain text", false, cbcBlockVector, cbcBlockVectorPlain},
		{"ctr legacy", true, ctrVector, ctrVectorPlain},
		{"cbc with spaces in the JSON", false, `{ "iv" : "000102030405060708090a0b0c0d0e0f", "content" : "47da5357b44c23aae6ce53bc8371983ffc8b62ce30f30d043909f74c02458417" }`, cbcVectorPlain},
		{"cbc with upper-case hex", false, `{"iv":"000102030405060708090A0B0C0D0E0F","content":"47DA5357B44C23AAE6CE53BC8371983FFC8B62CE30F30D043909F74C02458417"}`, cbcVectorPlain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustNew(t, testSecret, tt.legacy).Decrypt(tt.in)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Decrypt = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEncrypt_RoundTrip(t *testing.T) {
	plains := []string{"", "a", "1234", "0123456789abcdef", "0123456789abcdef0", cbcVectorPlain,
		"ünïcødé pässwörd €", strings.Repeat("x", 1000)}
	for _, legacy := range []bool{false, true} {
		c := mustNew(t, testSecret, legacy)
		for _, p := range plains {
			enc, err := c.Encrypt(p)
			if err != nil {
				t.Fatalf("Encrypt(%q, legacy=%v): %v", p, legacy, err)
			}
			if !IsEncrypted(enc) && p != "" {
				t.Errorf("IsEncrypted(%s) = false", enc)
			}
			var s map[string]string
			if err := json.Unmarshal([]byte(enc), &s); err != nil || len(s) != 2 || len(s["iv"]) != 32 {
				t.Errorf("Encrypt output %s is not {iv(32 hex),content}", enc)
			}
			got, err := c.Decrypt(enc)
			if err != nil {
				t.Fatalf("Decrypt(Encrypt(%q), legacy=%v): %v", p, legacy, err)
			}
			if got != p {
				t.Fatalf("round trip legacy=%v: got %q, want %q", legacy, got, p)
			}
		}
	}
}

func TestEncrypt_RandomIV(t *testing.T) {
	c := mustNew(t, testSecret, false)
	a, _ := c.Encrypt("same")
	b, _ := c.Encrypt("same")
	if a == b {
		t.Fatalf("two encryptions of the same text are identical: %s", a)
	}
}

func TestDecrypt_WrongSecret(t *testing.T) {
	// CBC with a wrong key almost always fails the padding check. Try a
	// number of secrets: none may panic, and a "success" must not give back
	// the original plain text.
	for _, secret := range []string{"wrong", "jambonz-test-secreT", "x", strings.Repeat("s", 100)} {
		got, err := mustNew(t, secret, false).Decrypt(cbcVector)
		if err == nil && got == cbcVectorPlain {
			t.Fatalf("secret %q decrypted the vector", secret)
		}
	}
	if _, err := mustNew(t, "wrong", false).Decrypt(cbcVector); err == nil {
		t.Fatal("Decrypt with the wrong secret succeeded")
	}
	// CTR has no integrity: a wrong key gives garbage, not the plain text.
	if got, _ := mustNew(t, "wrong", true).Decrypt(ctrVector); got == ctrVectorPlain {
		t.Fatal("legacy Decrypt with the wrong secret gave the plain text")
	}
}

func TestDecrypt_Malformed(t *testing.T) {
	const iv = "000102030405060708090a0b0c0d0e0f"
	const block = "47da5357b44c23aae6ce53bc8371983f"
	tests := []struct {
		name string
		in   string
		ctr  bool // also an error in legacy mode
	}{
		{"not json", "hunter2", true},
		{"empty", "", true},
		{"json array", `["a","b"]`, true},
		{"truncated json", `{"iv":"` + iv, true},
		{"iv not hex", `{"iv":"zz0102030405060708090a0b0c0d0e0f","content":"` + block + `"}`, true},
		{"iv too short", `{"iv":"0001020304050607","content":"` + block + `"}`, true},
		{"iv too long", `{"iv":"` + iv + `00","content":"` + block + `"}`, true},
		{"iv odd length", `{"iv":"` + iv + `0","content":"` + block + `"}`, true},
		{"iv missing", `{"content":"` + block + `"}`, true},
		{"iv a number", `{"iv":1,"content":"` + block + `"}`, true},
		{"content not hex", `{"iv":"` + iv + `","content":"xyz"}`, true},
		{"content odd length", `{"iv":"` + iv + `","content":"` + block + `0"}`, true},
		{"content empty", `{"iv":"` + iv + `","content":""}`, false},
		{"content not whole blocks", `{"iv":"` + iv + `","content":"` + block + `0102"}`, false},
		{"bad padding", `{"iv":"` + iv + `","content":"` + block + `"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := mustNew(t, testSecret, false).Decrypt(tt.in); err == nil {
				t.Fatalf("Decrypt(%s) = %q, want error", tt.in, got)
			}
			if tt.ctr {
				if got, err := mustNew(t, testSecret, true).Decrypt(tt.in); err == nil {
					t.Fatalf("legacy Decrypt(%s) = %q, want error", tt.in, got)
				}
			}
		})
	}
}

func TestIsEncrypted(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{cbcVector, true},
		{"  " + ctrVector + "\n", true},
		{`{"iv":"00","content":"00"}`, true},
		{"", false},
		{"password", false},
		{"{not json", false},
		{`{"iv":"","content":"00"}`, false},
		{`{"iv":"00"}`, false},
		{`{"content":"00"}`, false},
		{`{}`, false},
		{`{"iv":1,"content":2}`, false},
		{`["iv","content"]`, false},
		{`x{"iv":"00","content":"00"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := IsEncrypted(tt.in); got != tt.want {
				t.Fatalf("IsEncrypted(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// Open decrypts a sealed value and passes a plain one through, for both
// modes; a sealed value under another secret is an error, not plain text.
func TestOpen(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		c, err := New("secret-one", legacy)
		if err != nil {
			t.Fatal(err)
		}
		sealedValue, err := c.Encrypt("1234")
		if err != nil {
			t.Fatal(err)
		}
		if plain, sealed, err := c.Open(sealedValue); plain != "1234" || !sealed || err != nil {
			t.Errorf("legacy=%v: Open(sealed) = %q, %v, %v", legacy, plain, sealed, err)
		}
		if plain, sealed, err := c.Open("5678"); plain != "5678" || sealed || err != nil {
			t.Errorf("legacy=%v: Open(plain) = %q, %v, %v", legacy, plain, sealed, err)
		}
		if legacy {
			continue // CTR has no padding to check
		}
		other, _ := New("secret-two", legacy)
		if _, sealed, err := other.Open(sealedValue); !sealed || err == nil {
			t.Errorf("Open with another secret: sealed=%v err=%v, want an error", sealed, err)
		}
	}
}
