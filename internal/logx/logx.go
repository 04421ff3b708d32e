// Package logx builds the service's JSON logger and the keyed tokens that stand in for personal
// data wherever a value must be correlated across log lines without being readable.
package logx

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// New returns a JSON logger; debug lowers the level to Debug.
func New(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(traced{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// traced adds trace_id and span_id to every record logged with the context of a traced request
// (internal/tracing); other records pass unchanged.
type traced struct{ slog.Handler }

func (h traced) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traced) WithAttrs(attrs []slog.Attr) slog.Handler { return traced{h.Handler.WithAttrs(attrs)} }
func (h traced) WithGroup(name string) slog.Handler       { return traced{h.Handler.WithGroup(name)} }

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
