// Package vault keeps Aadhaar numbers and PANs encrypted (the UIDAI Aadhaar Data Vault model):
// each value is stored once, AES-256-GCM encrypted under a key that has an id (so keys can
// rotate), under a random reference that other tables hold instead of the value, with an HMAC
// blind index (its own key) for uniqueness and exact lookup. Keys come from configuration only.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Keyring holds the encryption keys by id; the last configured key is the active one.
type Keyring struct {
	keys     map[string]cipher.AEAD
	activeID string
	bidxKey  []byte
}

// ParseKeyring reads PII_ENCRYPTION_KEYS ("id:base64key,id2:base64key", 32-byte keys, the last
// one active) and BLIND_INDEX_KEY (base64, 32 bytes). Errors never repeat key material.
func ParseKeyring(encKeys, blindIndexKey string) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for _, item := range strings.Split(encKeys, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || id == "" || len(id) > 32 || strings.ContainsAny(id, " :") {
			return nil, errors.New("PII_ENCRYPTION_KEYS entries must look like id:base64-of-32-bytes")
		}
		raw, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("PII_ENCRYPTION_KEYS key %q: %w", id, err)
		}
		block, _ := aes.NewCipher(raw)
		aead, _ := cipher.NewGCM(block)
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("PII_ENCRYPTION_KEYS names key %q twice", id)
		}
		k.keys[id] = aead
		k.activeID = id
	}
	if len(k.keys) == 0 {
		return nil, errors.New("PII_ENCRYPTION_KEYS is required (id:base64-of-32-bytes)")
	}
	raw, err := decodeKey(blindIndexKey)
	if err != nil {
		return nil, fmt.Errorf("BLIND_INDEX_KEY: %w", err)
	}
	k.bidxKey = raw
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, errors.New("must decode to exactly 32 bytes (AES-256)")
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64")
}

// NewKeyMaterial returns a random 32-byte key, base64-encoded, for configuration.
func NewKeyMaterial() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ActiveKeyID is the id new ciphertexts are made with.
func (k *Keyring) ActiveKeyID() string { return k.activeID }

const formatV1 = 1

// Encrypt seals plaintext with the active key. aad binds the ciphertext to its row. Layout:
// version(1) | len(keyID)(1) | keyID | nonce(12) | ciphertext+tag.
func (k *Keyring) Encrypt(plaintext, aad []byte) []byte {
	aead := k.keys[k.activeID]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := make([]byte, 0, 2+len(k.activeID)+len(nonce)+len(plaintext)+aead.Overhead())
	out = append(out, formatV1, byte(len(k.activeID)))
	out = append(out, k.activeID...)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, aad)
}

// ErrUnknownKey means a ciphertext was made with a key that is not configured.
var ErrUnknownKey = errors.New("ciphertext key is not configured")

// Decrypt opens a ciphertext made by Encrypt with any configured key.
func (k *Keyring) Decrypt(ct, aad []byte) ([]byte, error) {
	id, rest, err := KeyIDOf(ct)
	if err != nil {
		return nil, err
	}
	aead, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("ciphertext does not authenticate")
	}
	return pt, nil
}

// KeyIDOf returns the key id in a ciphertext's header and the rest.
func KeyIDOf(ct []byte) (string, []byte, error) {
	if len(ct) < 2 || ct[0] != formatV1 || len(ct) < 2+int(ct[1]) {
		return "", nil, errors.New("not a vault ciphertext")
	}
	n := int(ct[1])
	return string(ct[2 : 2+n]), ct[2+n:], nil
}

// BlindIndex is HMAC-SHA256 over kind and the normalised value, keyed with BLIND_INDEX_KEY.
func (k *Keyring) BlindIndex(kind, value string) []byte {
	m := hmac.New(sha256.New, k.bidxKey)
	m.Write([]byte(kind + ":" + value))
	return m.Sum(nil)
}

// DerivedKey returns a 32-byte key for another purpose (such as signing list cursors), derived
// from BLIND_INDEX_KEY so that every replica has the same one without a new secret to manage.
// A derived key reveals nothing about BLIND_INDEX_KEY or the blind indexes.
func (k *Keyring) DerivedKey(purpose string) []byte {
	m := hmac.New(sha256.New, k.bidxKey)
	m.Write([]byte("usersvc derived key\x00" + purpose))
	return m.Sum(nil)
}
