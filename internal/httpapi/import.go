package httpapi

import (
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/importer"
	"github.com/usersvc/usersvc/internal/users"
)

// ImportPath is the bulk import's route (scope users:import).
const ImportPath = "/api/v1/users/import"

// importIdle is how long an import may go without reading a line or writing a result before the
// connection is dropped: the server's read and write timeouts are pushed back by this much after
// every chunk, since the body and the answer last as long as the file.
const importIdle = 60 * time.Second

// handleUserImport streams an NDJSON body of create objects into users and answers, as it goes,
// with one NDJSON result per line, then a summary line (docs/api.md, "Bulk import").
func handleUserImport(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || (mt != "application/x-ndjson" && mt != "application/jsonl") {
			writeProblem(c, log, newHTTPError(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"the request body must be NDJSON (one create object per line), sent with Content-Type: application/x-ndjson"))
			return
		}
		rc := http.NewResponseController(c.Writer)
		extend := func() {
			_ = rc.SetReadDeadline(time.Now().Add(importIdle))
			_ = rc.SetWriteDeadline(time.Now().Add(importIdle))
		}
		extend()
		c.Header("Content-Type", "application/x-ndjson")
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
		enc := json.NewEncoder(c.Writer)
		who := caller(c)
		sum, err := importer.Run(c.Request.Context(), svc, c.Request.Body, importer.Options{
			Format: importer.NDJSON, DecodeJSON: DecodeImportLine, Actor: who.Actor, RequestID: who.RequestID,
			Result: func(r importer.Result) error { return enc.Encode(r) },
			ChunkDone: func(importer.Summary) {
				_ = rc.Flush()
				extend()
			},
		})
		if err != nil {
			// The status is sent: the failure is the last line. Lines without a result were not
			// imported; a re-run of the file is safe (lines whose email exists answer "exists").
			p, _ := problemFor(err)
			_ = enc.Encode(gin.H{"error": p, "summary": sum})
			log.Warn("import stopped", "request_id", requestID(c), "lines", sum.Lines, "error", p.Detail)
			return
		}
		_ = enc.Encode(gin.H{"summary": sum})
	}
}
