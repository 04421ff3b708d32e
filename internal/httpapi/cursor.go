package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/users"
)

// cursors encodes list cursors and refuses every cursor this service did not issue: a cursor is
// "c2." + base64url(unix microseconds "." id) + "." + base64url(HMAC-SHA-256 tag, 16 bytes), keyed
// with a secret every replica shares (derived from BLIND_INDEX_KEY by the app). A forged or
// edited cursor fails the tag check and is answered 422, so no client value ever reaches the
// time arithmetic of the query.
type cursors struct{ key []byte }

// newCursors returns a codec keyed with key, or with a random key (cursors then only work on
// this process: tests and single-process tools).
func newCursors(key []byte) cursors {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return cursors{key: key}
}

const cursorPrefix = "c2."

// Cursor times are limited to what a DATETIME(6) column holds (years 1 to 9999).
var cursorMin, cursorMax = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)

func (k cursors) tag(payload []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("usersvc list cursor\x00"))
	m.Write(payload)
	return m.Sum(nil)[:16]
}

func (k cursors) encode(cur users.Cursor) string {
	payload := []byte(strconv.FormatInt(cur.CreatedAt.UnixMicro(), 10) + "." + cur.ID)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(k.tag(payload))
}

var errBadCursor = errors.New("bad cursor")

func (k cursors) decode(s string) (users.Cursor, error) {
	body, ok := strings.CutPrefix(s, cursorPrefix)
	if !ok {
		return users.Cursor{}, errBadCursor
	}
	p64, t64, ok := strings.Cut(body, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	tag, err2 := base64.RawURLEncoding.DecodeString(t64)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(tag, k.tag(payload)) {
		return users.Cursor{}, errBadCursor
	}
	// Issued by this service, so well formed; checked again all the same.
	micros, id, ok := strings.Cut(string(payload), ".")
	n, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil {
		return users.Cursor{}, errBadCursor
	}
	at := time.UnixMicro(n).UTC()
	if at.Before(cursorMin) || at.After(cursorMax) {
		return users.Cursor{}, errBadCursor
	}
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return users.Cursor{}, errBadCursor
	}
	return users.Cursor{CreatedAt: at, ID: id}, nil
}
