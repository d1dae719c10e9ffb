// Package credcrypt encrypts and decrypts stored credentials the way the
// jambonz api-server does (docs/contract.md#encrypted-passwords): AES-256-CBC (AES-256-CTR with
// LEGACY_CRYPTO), key = first 32 characters of base64(SHA-256(secret)), value
// stored as JSON {"iv": "<hex>", "content": "<hex>"}.
package credcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Cipher decrypts and encrypts credential strings.
type Cipher struct {
	key    []byte       // derived from the secret as the api-server does
	block  cipher.Block // AES of key: stateless, safe for concurrent use
	legacy bool
}

// New derives the key from secret. legacy selects AES-256-CTR.
func New(secret string, legacy bool) (*Cipher, error) {
	if secret == "" {
		return nil, errors.New("credcrypt: empty secret (set ENCRYPTION_SECRET)")
	}
	sum := sha256.Sum256([]byte(secret))
	key := []byte(base64.StdEncoding.EncodeToString(sum[:])[:32])
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credcrypt: %w", err)
	}
	return &Cipher{key: key, block: block, legacy: legacy}, nil
}

type sealed struct {
	IV      string `json:"iv"`
	Content string `json:"content"`
}

// IsEncrypted reports whether v looks like an encrypted value.
func IsEncrypted(v string) bool {
	_, ok := parse(v)
	return ok
}

// parse reads v as an encrypted value: ok is false when it is not one.
func parse(v string) (s sealed, ok bool) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "{") {
		return s, false
	}
	return s, json.Unmarshal([]byte(v), &s) == nil && s.IV != "" && s.Content != ""
}

// Open returns the plain text of v when v is an encrypted value (sealed
// true), and v itself when it is not: one reading of the JSON where
// IsEncrypted and Decrypt would make two.
func (c *Cipher) Open(v string) (plain string, sealed bool, err error) {
	s, ok := parse(v)
	if !ok {
		return v, false, nil
	}
	plain, err = c.open(s)
	return plain, true, err
}

// Decrypt returns the plain text of an encrypted value.
func (c *Cipher) Decrypt(v string) (string, error) {
	var s sealed
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return "", fmt.Errorf("credcrypt: value is not {iv,content} JSON: %w", err)
	}
	return c.open(s)
}

func (c *Cipher) open(s sealed) (string, error) {
	iv, err := hex.DecodeString(s.IV)
	if err != nil || len(iv) != aes.BlockSize {
		return "", errors.New("credcrypt: iv must be 16 bytes of hex")
	}
	data, err := hex.DecodeString(s.Content)
	if err != nil {
		return "", errors.New("credcrypt: content is not hex")
	}
	block := c.block
	if c.legacy {
		out := make([]byte, len(data))
		cipher.NewCTR(block, iv).XORKeyStream(out, data)
		return string(out), nil
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return "", errors.New("credcrypt: content is not a whole number of blocks")
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return "", errors.New("credcrypt: bad padding (wrong ENCRYPTION_SECRET?)")
	}
	return string(out[:len(out)-pad]), nil
}

// Encrypt seals plain with a random IV, in the stored JSON format.
func (c *Cipher) Encrypt(plain string) (string, error) {
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return "", fmt.Errorf("credcrypt: %w", err)
	}
	block := c.block
	var data []byte
	if c.legacy {
		data = make([]byte, len(plain))
		cipher.NewCTR(block, iv).XORKeyStream(data, []byte(plain))
	} else {
		pad := aes.BlockSize - len(plain)%aes.BlockSize
		in := append([]byte(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
		data = make([]byte, len(in))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, in)
	}
	b, err := json.Marshal(sealed{IV: hex.EncodeToString(iv), Content: hex.EncodeToString(data)})
	if err != nil {
		return "", fmt.Errorf("credcrypt: %w", err)
	}
	return string(b), nil
}
