package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver: it keeps every span exported to it.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   []string // every exported request as text, for the personal-data scan
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &collectortrace.ExportTraceServiceRequest{}
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.raw = append(o.raw, req.String())
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

// trace returns the spans of one trace once its server span has arrived.
func (o *otlpReceiver) trace(t *testing.T, traceID []byte) []*tracepb.Span {
	t.Helper()
	for i := 0; i < 100; i++ {
		for _, s := range o.spansOf(traceID) {
			if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				time.Sleep(200 * time.Millisecond) // the rest of the batch
				return o.spansOf(traceID)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no server span for trace %x", traceID)
	return nil
}

func (o *otlpReceiver) spansOf(traceID []byte) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if string(s.TraceId) == string(traceID) {
			out = append(out, s)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestTracing runs the binary with the standard OTEL_* variables pointing at an in-process OTLP
// receiver: a create that arrives with a W3C traceparent continues that trace, as a server span
// named after the route, over a transaction span whose children are the statements (named after
// their sqlc queries) and the vault, beside the Redis commands; its access-log line carries the
// trace and span ids; and no span holds a personal value or the client's address, also when a
// create fails on a duplicate (whose database error quotes the value) and for a search.
func TestTracing(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	base := fleet(t, 1, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
		"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "usersvc-e2e",
	})[0]
	client := &http.Client{Timeout: 10 * time.Second}
	traceID, parentID := randomHex(16), randomHex(8)
	body := userJSON()
	r := do(t, client, "POST", base+"/api/v1/users", body, "traceparent", "00-"+traceID+"-"+parentID+"-01", "Idempotency-Key", "trace-"+randomHex(4))
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	tid, _ := hex.DecodeString(traceID)
	spans := recv.trace(t, tid)
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[string(s.SpanId)] = s
	}
	var server, tx *tracepb.Span
	names := map[string]int{}
	for _, s := range spans {
		names[s.Name]++
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case s.Name == "tx":
			tx = s
		}
	}
	if server == nil || server.Name != "POST /api/v1/users" || hex.EncodeToString(server.ParentSpanId) != parentID {
		t.Fatalf("server span %v: want POST /api/v1/users, child of the incoming traceparent's span %s (spans: %v)", server, parentID, names)
	}
	// The client's address is the log's HMAC token, never the address itself (an IP address is
	// personal data); the addresses of the database and Redis servers are infrastructure.
	hidden := false
	for _, a := range server.Attributes {
		switch a.Key {
		case "client.address", "network.peer.address":
			if v := a.Value.GetStringValue(); v == "127.0.0.1" || len(v) < 16 {
				t.Errorf("server span %s = %q: want the client's token", a.Key, v)
			}
			hidden = true
		}
	}
	if !hidden {
		t.Error("the server span has no client.address: the check proved nothing")
	}
	if tx == nil || string(tx.ParentSpanId) != string(server.SpanId) {
		t.Fatalf("no transaction span under the server span: %v", names)
	}
	// under reports whether s descends from anc.
	under := func(s, anc *tracepb.Span) bool {
		for p := byID[string(s.ParentSpanId)]; p != nil; p = byID[string(p.ParentSpanId)] {
			if p == anc {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"InsertUser", "InsertAudit", "InsertVaultEntryPair", "AddLiveUsersAt", "InsertIdempotencyKey", "vault.store_pair"} {
		found := false
		for _, s := range spans {
			if s.Name == want {
				found = true
				if !under(s, tx) {
					t.Errorf("%s is not inside the transaction span", want)
				}
			}
		}
		if !found {
			t.Errorf("no %s span (spans: %v)", want, names)
		}
	}
	redisSpans := 0
	for _, s := range spans {
		for _, a := range s.Attributes {
			if a.Key == "db.system" && a.Value.GetStringValue() == "redis" || a.Key == "db.system.name" && a.Value.GetStringValue() == "redis" {
				redisSpans++
				if !under(s, server) {
					t.Errorf("Redis span %s outside the request", s.Name)
				}
			}
		}
	}
	if redisSpans == 0 {
		t.Errorf("no Redis command span (spans: %v)", names)
	}

	// The access-log line of the request carries its trace and span ids.
	found := false
	for _, line := range strings.Split(lastFleet.outs[0].String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" && rec["trace_id"] == traceID {
			found = rec["span_id"] == hex.EncodeToString(server.SpanId)
		}
	}
	if !found {
		t.Errorf("no access-log line with trace_id %s and the server span's id", traceID)
	}

	// A duplicate (the database's error names the value) and a search (the term is a name).
	if r := do(t, client, "POST", base+"/api/v1/users", body); r.code != 409 {
		t.Fatalf("duplicate create: %d", r.code)
	}
	term := strings.Fields(strings.Split(body, `"name":"`)[1])[2][:8] // from "Fleet User <tag>"
	if r := do(t, client, "GET", base+"/api/v1/users/search?q="+term, ""); r.code != 200 {
		t.Fatalf("search: %d", r.code)
	}
	time.Sleep(500 * time.Millisecond)
	recv.mu.Lock()
	dump := strings.Join(recv.raw, "\n")
	recv.mu.Unlock()
	used.Lock()
	values := append([]string{term}, used.values...)
	used.Unlock()
	for _, v := range values {
		if i := strings.Index(dump, v); i >= 0 {
			t.Errorf("an exported span holds a personal value: ...%s...", dump[max(i-120, 0):i])
		}
	}
	if !strings.Contains(dump, "GET /api/v1/users/search") || !strings.Contains(dump, "1062") {
		t.Errorf("the search's span or the duplicate's error number is missing from the export: the scan proved nothing")
	}
}
