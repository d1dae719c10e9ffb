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
	key    []byte
	legacy bool
}

// New derives the key from secret. legacy selects AES-256-CTR.
func New(secret string, legacy bool) (*Cipher, error) {
	if secret == "" {
		return nil, errors.New("credcrypt: empty secret (set ENCRYPTION_SECRET)")
	}
	sum := sha256.Sum256([]byte(secret))
	key := []byte(base64.StdEncoding.EncodeToString(sum[:])[:32])
	return &Cipher{key: key, legacy: legacy}, nil
}

type sealed struct {
	IV      string `json:"iv"`
	Content string `json:"content"`
}

// IsEncrypted reports whether v looks like an encrypted value.
func IsEncrypted(v string) bool {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "{") {
		return false
	}
	var s sealed
	return json.Unmarshal([]byte(v), &s) == nil && s.IV != "" && s.Content != ""
}

// Decrypt returns the plain text of an encrypted value.
func (c *Cipher) Decrypt(v string) (string, error) {
	var s sealed
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return "", fmt.Errorf("credcrypt: value is not {iv,content} JSON: %w", err)
	}
	iv, err := hex.DecodeString(s.IV)
	if err != nil || len(iv) != aes.BlockSize {
		return "", errors.New("credcrypt: iv must be 16 bytes of hex")
	}
	data, err := hex.DecodeString(s.Content)
	if err != nil {
		return "", errors.New("credcrypt: content is not hex")
	}
	block, err := aes.NewCipher(c.key)
	if err != nil {
		return "", fmt.Errorf("credcrypt: %w", err)
	}
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
	block, err := aes.NewCipher(c.key)
	if err != nil {
		return "", fmt.Errorf("credcrypt: %w", err)
	}
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
