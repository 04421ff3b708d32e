// Package logx builds the service's JSON logger and the keyed tokens that stand in for personal
// data wherever a value must be correlated across log lines without being readable.
package logx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
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
type Tokenizer struct{ key []byte }

// NewTokenizer returns a Tokenizer keyed with secret.
func NewTokenizer(secret []byte) Tokenizer { return Tokenizer{key: append([]byte(nil), secret...)} }

// Token returns a 16-byte hex token of value.
func (t Tokenizer) Token(value string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
