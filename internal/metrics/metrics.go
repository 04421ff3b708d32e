// Package metrics defines the service's Prometheus metrics. Labels carry route patterns,
// methods, statuses and fixed words only: never a path, id or any personal value.
package metrics

import (
	"database/sql"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every series the service exports, on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Requests *prometheus.CounterVec   // route, method, status
	Duration *prometheus.HistogramVec // route, method
	InFlight prometheus.Gauge

	RedisErrors         *prometheus.CounterVec // use: ratelimit | idempotency
	RateLimitRejections *prometheus.CounterVec // policy
	RateLimitDecisions  *prometheus.CounterVec // decision taken without Redis: allow | deny
	IdempotencyReplays  prometheus.Counter
	IdempotencyRefusals *prometheus.CounterVec // reason: in_flight | reused | unavailable
	DBGateRejections    prometheus.Counter

	EventsPublished prometheus.Counter // change events published to the Redis Stream
	EventsBacklog   prometheus.Gauge   // events waiting in MySQL (counted up to events.BacklogCap)
	EventsLag       prometheus.Gauge   // age of the oldest waiting event, seconds
}

// New registers the metrics, the Go and process collectors, build info, and the pool stats of
// each named database.
func New(version, revision string, dbs map[string]*sql.DB) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersvc_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usersvc_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersvc_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersvc_redis_errors_total", Help: "Redis calls that failed, by use.",
		}, []string{"use"}),
		RateLimitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersvc_rate_limit_rejections_total", Help: "Requests answered 429, by policy.",
		}, []string{"policy"}),
		RateLimitDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersvc_rate_limit_redis_unavailable_total", Help: "Rate-limit decisions taken without Redis, by decision.",
		}, []string{"decision"}),
		IdempotencyReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersvc_idempotency_replays_total", Help: "Responses replayed for a repeated Idempotency-Key.",
		}),
		IdempotencyRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersvc_idempotency_refusals_total", Help: "Keyed requests refused, by reason.",
		}, []string{"reason"}),
		DBGateRejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersvc_db_gate_rejections_total", Help: "Requests answered 503 because every database slot stayed busy for DB_ACQUIRE_TIMEOUT.",
		}),
		EventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersvc_events_published_total", Help: "Change events this replica published to the Redis Stream.",
		}),
		EventsBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersvc_events_backlog", Help: "Change events committed but not yet published (counted up to 100000).",
		}),
		EventsLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersvc_events_lag_seconds", Help: "Age of the oldest change event not yet published; 0 when none waits.",
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usersvc_build_info", Help: "Build information; the value is 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision},
	})
	build.Set(1)
	r.MustRegister(m.Requests, m.Duration, m.InFlight, m.RedisErrors, m.RateLimitRejections, m.RateLimitDecisions,
		m.IdempotencyReplays, m.IdempotencyRefusals, m.DBGateRejections,
		m.EventsPublished, m.EventsBacklog, m.EventsLag, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, db := range dbs {
		if db != nil {
			r.MustRegister(collectors.NewDBStatsCollector(db, name))
		}
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
