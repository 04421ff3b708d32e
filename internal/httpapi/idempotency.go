package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/idempotency"
	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/users"
)

const idempotencyCtxKey = "idempotency"

// replayedHeaders are the response headers stored with a completed key and replayed with it.
var replayedHeaders = []string{"Content-Type", "ETag", "Location"}

// idempotent implements Idempotency-Key for one write route. bodyKey enables the description's
// idempotency_key body field (create only). The record is scoped to the caller (the
// authenticated principal), the method, the route and the path id.
//
// A stored response about a user is replayed only while that user is not erased (erased asks
// the database): an erasure deletes the stored responses (Store.ForgetUser), and this check
// covers one stored in the instant between the erasure and that deletion.
func idempotent(store *idempotency.Store, erased func(context.Context, string) (bool, error), m *metrics.Metrics, log *slog.Logger, bodyKey bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.GetHeader("Idempotency-Key")
		var body []byte
		if hasBody(c.Request) {
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					writeProblem(c, log, newHTTPError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", MaxBodyBytes))
				} else {
					writeProblem(c, log, newHTTPError(http.StatusBadRequest, "unreadable_body", "the request body could not be read"))
				}
				return
			}
			c.Request.Body = io.NopCloser(bytes.NewReader(body))
		}
		if bodyKey {
			if k := bodyIdempotencyKey(body); k != "" {
				if !validIdempotencyKey(k) {
					c.Next() // the handler reports the field with the other validation errors
					return
				}
				if key != "" && key != k {
					writeProblem(c, log, newHTTPError(http.StatusBadRequest, "idempotency_key_mismatch",
						"the Idempotency-Key header and the idempotency_key field differ; send one, or the same value in both"))
					return
				}
				key = k
			}
		}
		if key == "" {
			c.Next()
			return
		}
		if !validIdempotencyKey(key) {
			writeProblem(c, log, newHTTPError(http.StatusBadRequest, "invalid_idempotency_key",
				"Idempotency-Key must be 1 to 255 visible ASCII characters"))
			return
		}
		hash := sha256.Sum256([]byte(principalOf(c).ID + "\x00" + c.Request.Method + "\x00" + c.FullPath() + "\x00" + c.Param("id") + "\x00" + key))
		fp := fingerprint(body, c.GetHeader("If-Match"))
		c.Header("Idempotency-Key-TTL", strconv.Itoa(int(store.TTL/time.Second)))

		claim, rec, err := store.BeginOrWait(c.Request.Context(), hash[:], hex.EncodeToString(fp))
		switch {
		case err != nil && clientGone(c):
			writeProblem(c, log, context.Canceled)
			return
		case err != nil:
			m.RedisErrors.WithLabelValues("idempotency").Inc()
			m.IdempotencyRefusals.WithLabelValues("unavailable").Inc()
			log.WarnContext(c.Request.Context(), "idempotency store unavailable", "request_id", requestID(c), "error", err.Error())
			writeProblem(c, log, &httpError{status: http.StatusServiceUnavailable, code: "idempotency_unavailable",
				detail: "idempotency keys cannot be honoured right now (Redis is unavailable); nothing was changed, retry later",
				header: map[string]string{"Retry-After": "1"}})
			return
		case rec != nil && rec.Fingerprint != hex.EncodeToString(fp):
			m.IdempotencyRefusals.WithLabelValues("reused").Inc()
			writeProblem(c, log, errKeyReused)
			return
		case rec != nil && rec.State == idempotency.StateInFlight:
			m.IdempotencyRefusals.WithLabelValues("in_flight").Inc()
			writeProblem(c, log, &httpError{status: http.StatusConflict, code: "idempotency_key_in_flight",
				detail: "a request with this Idempotency-Key is still being processed; retry later",
				header: map[string]string{"Retry-After": "1"}})
			return
		case rec != nil && rec.UserID != "":
			gone, err := erased(c.Request.Context(), rec.UserID)
			if err != nil {
				writeProblem(c, log, err)
				return
			}
			if gone {
				if err := store.Forget(c.Request.Context(), hash[:]); err != nil {
					log.WarnContext(c.Request.Context(), "stored response of an erased user not deleted", "request_id", requestID(c), "error", err.Error())
				}
				writeProblem(c, log, errKeyErased)
				return
			}
			replay(c, m, rec)
			return
		case rec != nil:
			replay(c, m, rec)
			return
		}

		c.Set(idempotencyCtxKey, &users.Idempotency{KeyHash: hash[:], Fingerprint: fp, TTL: store.TTL})
		cw := &captureWriter{ResponseWriter: c.Writer}
		c.Writer = cw
		c.Next()

		// The request is over; its context may be cancelled, but the record must still be written.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 2*time.Second)
		defer cancel()
		status := cw.Status()
		// Nothing is stored for a failure a retry should repeat (5xx, the client left) nor for
		// 410 (the user was erased: no record about them is kept).
		if status >= 500 || status == statusClientClosedRequest || status == http.StatusGone {
			if err := store.Release(ctx, claim); err != nil {
				log.WarnContext(ctx, "idempotency key not released", "request_id", requestID(c), "error", err.Error())
			}
			return
		}
		header := map[string]string{}
		for _, h := range replayedHeaders {
			if v := cw.Header().Get(h); v != "" {
				header[h] = v
			}
		}
		done := idempotency.Record{Fingerprint: hex.EncodeToString(fp), Status: status, Header: header, Body: cw.buf.Bytes(),
			UserID: c.Param("id")}
		if loc, ok := strings.CutPrefix(header["Location"], "/api/v1/users/"); ok && done.UserID == "" {
			done.UserID = loc
		}
		if err := store.Complete(ctx, claim, done); err != nil {
			// The change is committed and recorded in MySQL: a retry is still recognised there.
			m.RedisErrors.WithLabelValues("idempotency").Inc()
			log.WarnContext(ctx, "idempotency record not stored", "request_id", requestID(c), "error", err.Error())
		}
	}
}

// replay answers with a stored response.
func replay(c *gin.Context, m *metrics.Metrics, rec *idempotency.Record) {
	for k, v := range rec.Header {
		c.Header(k, v)
	}
	m.IdempotencyReplays.Inc()
	c.Header("Idempotent-Replayed", "true")
	c.Status(rec.Status)
	_, _ = c.Writer.Write(rec.Body)
	c.Abort()
}

// errKeyErased answers a retry of a request whose user was erased since: the stored response
// held the person's data, which is gone for good (410 Gone), and nothing is done again.
var errKeyErased = newHTTPError(http.StatusGone, "idempotency_key_erased",
	"this Idempotency-Key was used for a user who has since been erased; the stored response is gone for good and nothing was changed")

var errKeyReused = newHTTPError(http.StatusUnprocessableEntity, "idempotency_key_reused",
	"this Idempotency-Key was already used for a different request; use a new key for a new request")

// idempotencyOf returns the key the middleware attached, for the use case to record.
func idempotencyOf(c *gin.Context) *users.Idempotency {
	v, _ := c.Get(idempotencyCtxKey)
	idem, _ := v.(*users.Idempotency)
	return idem
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// bodyIdempotencyKey returns the idempotency_key string field of a JSON object body, if any.
func bodyIdempotencyKey(body []byte) string {
	var obj struct {
		Key *string `json:"idempotency_key"`
	}
	if json.Unmarshal(body, &obj) != nil || obj.Key == nil {
		return ""
	}
	return *obj.Key
}

// fingerprint hashes the canonical request: the JSON body re-encoded with sorted keys and without
// idempotency_key (so header and body keys are interchangeable), plus If-Match.
func fingerprint(body []byte, ifMatch string) []byte {
	canonical := body
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if len(bytes.TrimSpace(body)) > 0 && dec.Decode(&v) == nil {
		if obj, ok := v.(map[string]any); ok {
			delete(obj, "idempotency_key")
		}
		if b, err := json.Marshal(v); err == nil {
			canonical = b
		}
	}
	h := sha256.New()
	h.Write(canonical)
	h.Write([]byte{0})
	h.Write([]byte(ifMatch))
	return h.Sum(nil)
}

// captureWriter keeps a copy of the response body for the idempotency record.
type captureWriter struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
