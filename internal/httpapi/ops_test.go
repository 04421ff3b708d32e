package httpapi_test

import (
	"strings"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	e := newEnvWith(t, envOptions{})
	r := e.do(t, "GET", "/readyz", nil, "Authorization", "")
	if r.Code != 200 || r.JSON(t)["checks"].(map[string]any)["mysql"] != "ok" || r.JSON(t)["checks"].(map[string]any)["redis"] != "ok" {
		t.Fatalf("ready: %d %s", r.Code, r.Body)
	}
	e.draining.Store(true)
	if r := e.do(t, "GET", "/readyz", nil); r.Code != 503 || r.JSON(t)["status"] != "draining" {
		t.Errorf("draining: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", "/healthz", nil); r.Code != 200 {
		t.Errorf("healthz while draining: %d", r.Code)
	}
	e.draining.Store(false)

	down := newEnvWith(t, envOptions{redisURL: "redis://127.0.0.1:1/0"})
	r = down.do(t, "GET", "/readyz", nil)
	if r.Code != 503 || !strings.Contains(string(r.Body), `"failing":["redis"]`) {
		t.Errorf("redis down: %d %s", r.Code, r.Body)
	}
}

// TestMetrics scrapes /metrics before and after some traffic and checks that the series move,
// and that no label holds an id, a path or a personal value.
func TestMetrics(t *testing.T) {
	e := newEnvWith(t, envOptions{perMinute: 3})
	p := newPerson()
	u := e.create(t, p)
	k := "m-" + randLetters(6)
	e.do(t, "PUT", "/api/v1/users/"+u["id"].(string), map[string]any{"name": "Metric Name"}, "Idempotency-Key", k)
	e.do(t, "PUT", "/api/v1/users/"+u["id"].(string), map[string]any{"name": "Metric Name"}, "Idempotency-Key", k) // replay
	e.do(t, "GET", "/api/v1/users/", nil)                                                                          // 4th: 429
	r := e.do(t, "GET", "/metrics", nil, "Authorization", "")
	if r.Code != 200 {
		t.Fatalf("metrics: %d", r.Code)
	}
	body := string(r.Body)
	for _, want := range []string{
		`usersvc_http_requests_total{method="POST",route="/api/v1/users",status="201"} 1`,
		`usersvc_http_requests_total{method="PUT",route="/api/v1/users/:id",status="200"} 2`,
		`usersvc_http_requests_total{method="GET",route="/api/v1/users",status="429"} 1`,
		`usersvc_http_request_duration_seconds_count{method="POST",route="/api/v1/users"} 1`,
		`usersvc_rate_limit_rejections_total{policy="default"} 1`,
		`usersvc_idempotency_replays_total 1`,
		`usersvc_http_requests_in_flight 1`, // the scrape itself
		`usersvc_build_info{revision="test-rev",version="test"} 1`,
		`go_sql_open_connections{db_name="main"}`,
		`go_sql_wait_count_total{db_name="main"}`,
		`go_sql_wait_duration_seconds_total{db_name="main"}`,
		`go_sql_in_use_connections{db_name="main"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{u["id"].(string), p["email"].(string), p["primary_mobile"].(string), p["aadhaar"].(string)} {
		if strings.Contains(body, leak) {
			t.Errorf("metrics contain a value from a request")
		}
	}
}

// TestPoolExhaustionFailsFast: with every database slot held by a request stuck on a row lock,
// the next request answers 503 after DB_ACQUIRE_TIMEOUT instead of queueing, and the service
// recovers once the slot is free.
func TestPoolExhaustionFailsFast(t *testing.T) {
	e := newEnvWith(t, envOptions{dbSlots: 1})
	u := e.create(t, newPerson())
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT id FROM users WHERE id = ? FOR UPDATE", u["id"]); err != nil {
		t.Fatal(err)
	}
	done := make(chan response, 1)
	go func() {
		done <- e.do(t, "PATCH", "/api/v1/users/"+u["id"].(string), map[string]any{"name": "Stuck Writer"})
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	r := e.do(t, "GET", "/api/v1/users/", nil)
	if r.Code != 503 || r.Header.Get("Retry-After") == "" || r.JSON(t)["code"] != "overloaded" {
		t.Fatalf("exhausted: %d %s", r.Code, r.Body)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("503 took %v: it queued", waited)
	}
	_ = tx.Rollback()
	if first := <-done; first.Code != 200 {
		t.Fatalf("held request: %d", first.Code)
	}
	if r := e.do(t, "GET", "/api/v1/users/", nil); r.Code != 200 {
		t.Errorf("after release: %d", r.Code)
	}
	if !strings.Contains(string(e.do(t, "GET", "/metrics", nil).Body), "usersvc_db_gate_rejections_total 1") {
		t.Error("rejection not counted")
	}
}
