// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* variables only
// (docs/operations.md, "Tracing"). Without an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none,
// it installs nothing: no middleware, no wrapped driver, no Redis hook, and the few spans started
// through the global API (a transaction, the vault) are the API's no-op spans.
//
// What a trace holds: a server span per request named after its route template, a span per
// transaction, a span per SQL statement named after its sqlc query (the statement's text has
// placeholders only; arguments and the database's error messages, which can quote a value, are
// never recorded), a span per Redis command (without its arguments), and spans around the vault.
// The client's address is replaced by the same HMAC token the logs use.
package tracing

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/XSAM/otelsql"
	"github.com/gin-gonic/gin"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is the process's tracing: off (the zero value's Provider is nil) or a provider with its
// exporter.
type Tracing struct {
	Provider trace.TracerProvider // nil when off
	shutdown func(context.Context) error
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.Provider != nil }

// Shutdown flushes the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// FromEnv sets tracing up from the OTEL_* variables. token hides a client address the way the
// logs do (logx.Tokenizer.Token).
func FromEnv(ctx context.Context, getenv func(string) string, version string, token func(string) string) (*Tracing, error) {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") ||
		getenv("OTEL_EXPORTER_OTLP_ENDPOINT")+getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return &Tracing{}, nil
	}
	// The exporters read the rest of OTEL_EXPORTER_OTLP_* (headers, timeout, certificates, insecure).
	var exp sdktrace.SpanExporter
	var err error
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc")
	}
	if err != nil {
		return nil, err
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read here; OTEL_TRACES_SAMPLER(_ARG) and
	// OTEL_BSP_* by the SDK.
	res, err := resource.Merge(resource.NewSchemaless(attribute.String("service.name", "usersvc"), attribute.String("service.version", version)),
		resource.Environment())
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(hideClient{token: token})}
	if getenv("OTEL_TRACES_SAMPLER") == "" {
		// Traces start at requests: the background jobs' work (the event relay's polls, the search
		// compactor, purges) would otherwise be a root span several times a second.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(requestRoots{})))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// requestRoots samples a trace when its root is a request's server span.
type requestRoots struct{}

func (requestRoots) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	d := sdktrace.Drop
	if p.Kind == trace.SpanKindServer {
		d = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (requestRoots) Description() string { return "RequestRoots" }

// hideClient replaces the client's and the peer's address on server spans by their log token: an
// IP address is personal data.
type hideClient struct{ token func(string) string }

func (h hideClient) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	for _, kv := range s.Attributes() {
		switch kv.Key {
		case "client.address", "network.peer.address":
			s.SetAttributes(attribute.String(string(kv.Key), h.token(kv.Value.AsString())))
		case "network.peer.port":
			s.SetAttributes(attribute.Int(string(kv.Key), 0))
		}
	}
}
func (hideClient) OnEnd(sdktrace.ReadOnlySpan)      {}
func (hideClient) Shutdown(context.Context) error   { return nil }
func (hideClient) ForceFlush(context.Context) error { return nil }

// Middleware is the server span of every request (otelgin), named after the route template; W3C
// traceparent is accepted. Nil when tracing is off. /healthz, /readyz and /metrics are left out.
func (t *Tracing) Middleware() gin.HandlerFunc {
	if !t.Enabled() {
		return nil
	}
	return otelgin.Middleware("usersvc", otelgin.WithTracerProvider(t.Provider),
		otelgin.WithPropagators(otel.GetTextMapPropagator()),
		otelgin.WithSpanNameFormatter(func(c *gin.Context) string {
			if r := c.FullPath(); r != "" {
				return c.Request.Method + " " + r
			}
			return ""
		}),
		otelgin.WithGinFilter(func(c *gin.Context) bool {
			switch c.FullPath() {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}))
}

// OpenDB opens a database through connector, with a span per statement when tracing is on.
func (t *Tracing) OpenDB(connector driver.Connector) *sql.DB {
	if !t.Enabled() {
		return sql.OpenDB(connector)
	}
	return otelsql.OpenDB(connector,
		otelsql.WithTracerProvider(t.Provider),
		otelsql.WithAttributes(attribute.String("db.system.name", "mysql")),
		otelsql.WithSpanNameFormatter(func(_ context.Context, method otelsql.Method, query string) string {
			if name := QueryName(query); name != "" {
				return name
			}
			return string(method)
		}),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true, OmitRows: true, OmitConnectorConnect: true, OmitConnPrepare: true,
			DisableErrSkip: true,
			// A driver error can quote a value ("Duplicate entry '...' for key ..."): never record
			// it; the error's number goes in an attribute instead.
			RecordError: func(error) bool { return false },
		}),
		otelsql.WithSpanErrorAttributesGetter(func(err error) []attribute.KeyValue {
			var me *mysql.MySQLError
			if errors.As(err, &me) {
				return []attribute.KeyValue{attribute.String("error.type", "mysql"), attribute.Int("db.response.status_code", int(me.Number))}
			}
			return []attribute.KeyValue{attribute.String("error.type", "other")}
		}),
	)
}

// QueryName is the sqlc query a statement comes from ("-- name: GetLiveUser :one" opens every
// statement sqlc generates), or "".
func QueryName(query string) string {
	const prefix = "-- name: "
	if !strings.HasPrefix(query, prefix) {
		return ""
	}
	rest := query[len(prefix):]
	if i := strings.IndexAny(rest, " \n"); i > 0 {
		return rest[:i]
	}
	return ""
}

// InstrumentRedis adds a span per Redis command (never its arguments) when tracing is on.
func (t *Tracing) InstrumentRedis(rdb redis.UniversalClient) error {
	if !t.Enabled() {
		return nil
	}
	return redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(t.Provider), redisotel.WithDBStatement(false))
}
