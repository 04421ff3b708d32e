// Package logx builds the service's JSON logger and the keyed tokens that stand in for personal
// data wherever a value must be correlated across log lines without being readable.
package logx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"sync"
)

// New returns a JSON logger; debug lowers the level to Debug.
func New(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Tokenizer turns personal values into HMAC-SHA256 tokens keyed with LOG_HASH_SECRET. Without the
// key a token cannot be reversed by enumerating candidates (as a plain SHA-256 could).
type Tokenizer struct {
	key []byte
	// macs holds keyed HMACs for reuse: every access-log line makes a token, and a reset HMAC
	// keeps its keyed state instead of hashing the key again.
	macs *sync.Pool
}

// NewTokenizer returns a Tokenizer keyed with secret.
func NewTokenizer(secret []byte) Tokenizer {
	key := append([]byte(nil), secret...)
	return Tokenizer{key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// Token returns a 16-byte hex token of value.
func (t Tokenizer) Token(value string) string {
	var m hash.Hash
	if t.macs != nil {
		m = t.macs.Get().(hash.Hash)
		defer t.macs.Put(m)
		m.Reset()
	} else {
		m = hmac.New(sha256.New, t.key)
	}
	_, _ = io.WriteString(m, value)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:16])
}
