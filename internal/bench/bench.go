// Package bench is the load generator behind `usersvc-bench bench`: it drives a running service over
// HTTP endpoint by endpoint at a fixed concurrency, measures the same driver straight against
// the database (primary-key point select, single-row insert commit) as the hardware's limit, and
// prints throughput, latency percentiles, errors, server RSS and each endpoint's ratio.
package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/client"
	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/users"
)

// Options configures a run.
type Options struct {
	URL string // the service, e.g. http://127.0.0.1:8000
	Key string // an API key with users:read, users:write, users:delete
	DB  *sql.DB
	// Service, when set, is measured in-process too (create without HTTP, Redis or auth), to
	// separate the database's share of a create from the service's.
	Service     *users.Service
	Concurrency int
	Duration    time.Duration // per endpoint
	Out         io.Writer
	// Only, when set, measures just the endpoints whose name contains it (and the baselines).
	Only string
}

// Row is one measured endpoint.
type Row struct {
	Name          string
	Requests      int
	Errors        int
	Rate          float64
	P50, P95, P99 time.Duration
	Baseline      string // which raw measurement the ratio is against
	Ratio         float64
	// Baseline2 and Ratio2: writes are also compared with the least any design must write.
	Baseline2 string
	Ratio2    float64
	CPU       CPU // CPU time per request, by process
}

type op func(ctx context.Context, worker int, i int64) error

// measure runs fn from Concurrency workers for Duration, and samples the CPU used meanwhile.
func measure(ctx context.Context, o Options, name string, fn op) Row {
	client, outer := &http.Client{Timeout: 5 * time.Second}, ctx
	cpu0 := sampleCPU(outer, client, o.URL)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      atomic.Int64
		count     atomic.Int64
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				i := count.Add(1)
				t0 := time.Now()
				// A failed request is an error. One cut off by the end of the window counts only if
				// it had been running for (nearly) the whole window: it never finished at all.
				if err := fn(ctx, w, i); err != nil && (ctx.Err() == nil || time.Since(t0) >= o.Duration*9/10) {
					errs.Add(1)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	row := Row{Name: name, Requests: len(latencies), Errors: int(errs.Load()), Rate: float64(len(latencies)) / elapsed.Seconds(),
		P50: pct(.50), P95: pct(.95), P99: pct(.99)}
	row.CPU = perRequest(cpu0, sampleCPU(outer, client, o.URL), row.Requests)
	if o.Out != nil {
		fmt.Fprintf(o.Out, "%-28s %8.0f req/s  p50 %-8s p95 %-8s p99 %-8s errors %d\n", name, row.Rate, round(row.P50), round(row.P95), round(row.P99), row.Errors)
	}
	return row
}

func round(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

// Run measures every endpoint and the raw baselines.
func Run(ctx context.Context, o Options) ([]Row, int64, error) {
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency * 2}}
	q := sqlcgen.New(o.DB)
	ids, err := sampleIDs(ctx, o.DB, 20000)
	if err != nil {
		return nil, 0, err
	}
	if len(ids) < 1000 {
		return nil, 0, fmt.Errorf("only %d users: seed first (usersvc-bench seed --count 1000000)", len(ids))
	}
	var email string // a selective query: one user's email up to the @
	if err := o.DB.QueryRowContext(ctx, "SELECT email FROM users WHERE id = ?", ids[0]).Scan(&email); err != nil {
		return nil, 0, err
	}
	selective, _, _ := strings.Cut(email, "@")
	// Every endpoint is called through the typed client (package client, generated from the OpenAPI
	// document), without its retry layer: each request is measured once, and no create gets an
	// Idempotency-Key. Bodies are read and dropped, not decoded, as a load generator should.
	api, err := client.NewClient(o.URL, client.WithHTTPClient(httpClient), client.WithRequestEditorFn(
		func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+o.Key)
			return nil
		}))
	if err != nil {
		return nil, 0, err
	}
	expect := func(want int) func(*http.Response, error) error {
		return func(resp *http.Response, err error) error {
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("%s %s: %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
			}
			return nil
		}
	}
	is200, is201 := expect(http.StatusOK), expect(http.StatusCreated)
	page := func(n string) *client.ListUsersParams { return &client.ListUsersParams{Page: &n} }
	tag := "b" + strings.ToLower(uuid.NewString()[:6])
	var cand atomic.Uint64
	start, err := freshCandidates(ctx, o.DB, tag)
	if err != nil {
		return nil, 0, err
	}
	cand.Store(start)
	now := time.Now()
	newUser := func() client.UserCreate {
		for {
			if p, ok := seed.Person(cand.Add(1), tag, now); ok {
				return client.UserCreate{Name: p.Name, Email: p.Email.Display(), PrimaryMobile: p.PrimaryMobile,
					Aadhaar: p.Aadhaar.Digits(), Pan: p.PAN.Value(), DateOfBirth: p.DateOfBirth.Format(time.DateOnly),
					PlaceOfBirth: p.PlaceOfBirth, CurrentAddress: p.CurrentAddress, PermanentAddress: p.PermanentAddress}
			}
		}
	}
	pick := func() string { return ids[rand.IntN(len(ids))] }
	var (
		last     sync.Once
		lastPage string
	)
	deepCursor, err := cursorAt(ctx, api, 5000)
	if err != nil {
		return nil, 0, err
	}
	var deleted atomic.Int64
	rssMax := atomic.Int64{}
	stopRSS := watchRSS(ctx, httpClient, o.URL, &rssMax)
	defer stopRSS()

	var rows []Row
	point := measure(ctx, o, "raw: point select (by PK)", func(ctx context.Context, _ int, _ int64) error {
		_, err := q.GetLiveUser(ctx, pick())
		return err
	})
	// The insert baseline writes to a scratch copy of the users table (same columns, indexes and
	// engine), so that its tens of thousands of rows neither sit in the list nor form a burst of
	// users created today (see docs/database.md, "Lists").
	dropRaw, err := scratchTables(ctx, o.DB)
	if err != nil {
		return nil, 0, err
	}
	defer dropRaw()
	insert := measure(ctx, o, "raw: insert + commit", func(ctx context.Context, _ int, _ int64) error {
		return rawInsert(ctx, o.DB, &cand, tag, now)
	})
	// The least any design of this service must write for a create: the users row, one vault row
	// and one audit row, in one transaction, through the same driver.
	write3 := measure(ctx, o, "raw: users + vault + audit rows in one tx", func(ctx context.Context, _ int, _ int64) error {
		return rawWrite3(ctx, o.DB, &cand, tag, now, false)
	})
	// A create's own statements, without the service: what the SQL of this design costs.
	shape := measure(ctx, o, "raw: a create's statements in one tx", func(ctx context.Context, _ int, _ int64) error {
		return rawWrite3(ctx, o.DB, &cand, tag, now, true)
	})
	shape.Baseline, shape.Ratio = write3.Name, shape.Rate/write3.Rate
	rows = append(rows, point, insert, write3, shape)
	if o.Service != nil {
		r := measure(ctx, o, "in-process get by id (no HTTP)", func(ctx context.Context, _ int, _ int64) error {
			_, err := o.Service.Get(ctx, users.Caller{Actor: "bench"}, pick(), false)
			return err
		})
		r.Baseline, r.Ratio = point.Name, r.Rate/point.Rate
		rows = append(rows, r)
		r = measure(ctx, o, "in-process create (no HTTP)", func(ctx context.Context, _ int, _ int64) error {
			for {
				if p, ok := seed.Person(cand.Add(1), tag, now); ok {
					_, err := o.Service.Create(ctx, users.Caller{Actor: "bench"}, p)
					return err
				}
			}
		})
		r.Baseline, r.Ratio = write3.Name, r.Rate/write3.Rate
		r.Baseline2, r.Ratio2 = insert.Name, r.Rate/insert.Rate
		rows = append(rows, r)
	}
	type ep struct {
		name, base string
		fn         op
	}
	for _, e := range []ep{
		// The HTTP floor: no database, Redis or auth. No endpoint can beat this ratio here.
		{"GET /healthz (HTTP only)", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.Health(ctx))
		}},
		{"GET /users/{id}", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.GetUser(ctx, pick()))
		}},
		{"POST /users (create)", "insert", func(ctx context.Context, _ int, _ int64) error {
			return is201(api.CreateUser(ctx, nil, newUser()))
		}},
		{"PATCH /users/{id}", "insert", func(ctx context.Context, _ int, i int64) error {
			addr := strconv.FormatInt(i, 10) + " Bench Road, Pune 411001"
			return is200(api.PatchUser(ctx, pick(), nil, client.UserUpdate{CurrentAddress: &addr}))
		}},
		{"GET /users?page=1", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.ListUsers(ctx, page("1")))
		}},
		{"GET /users?page=5000", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.ListUsers(ctx, page("5000")))
		}},
		{"GET /users?page=last (deepest)", "point", func(ctx context.Context, _ int, _ int64) error {
			last.Do(func() { // once the creates above have run: the last page then
				var live int64
				live, _ = q.CountLiveUsersMaintained(ctx)
				lastPage = strconv.FormatInt(max(1, (live+9)/10), 10)
			})
			return is200(api.ListUsers(ctx, page(lastPage)))
		}},
		{"GET /users?cursor= (deep)", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.ListUsers(ctx, &client.ListUsersParams{Cursor: &deepCursor}))
		}},
		{"search selective q (one email)", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.SearchUsers(ctx, &client.SearchUsersParams{Q: selective}))
		}},
		{"search common q (sharma)", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.SearchUsers(ctx, &client.SearchUsersParams{Q: "sharma"}))
		}},
		{"search 2-character q (ar)", "point", func(ctx context.Context, _ int, _ int64) error {
			return is200(api.SearchUsers(ctx, &client.SearchUsersParams{Q: "ar"}))
		}},
		{"DELETE /users/{id}", "insert", func(ctx context.Context, _ int, _ int64) error {
			n := deleted.Add(1)
			if int(n) >= len(ids) {
				return fmt.Errorf("out of ids")
			}
			return is200(api.DeleteUserWithBody(ctx, ids[len(ids)-int(n)], nil, "", nil))
		}},
	} {
		if o.Only != "" && !strings.Contains(e.name, o.Only) {
			continue
		}
		r := measure(ctx, o, e.name, e.fn)
		r.Baseline, r.Ratio = point.Name, r.Rate/point.Rate
		if e.base == "insert" {
			r.Baseline, r.Ratio = write3.Name, r.Rate/write3.Rate
			r.Baseline2, r.Ratio2 = insert.Name, r.Rate/insert.Rate
		}
		rows = append(rows, r)
	}
	return rows, rssMax.Load(), nil
}

// cursorAt returns the next_cursor after page n (10 per page).
func cursorAt(ctx context.Context, api *client.Client, n int) (string, error) {
	resp, err := api.ListUsers(ctx, &client.ListUsersParams{Page: ptr(strconv.Itoa(n))})
	if err != nil {
		return "", err
	}
	res, err := client.ParseListUsersResponse(resp)
	if err == nil && (res.JSON200 == nil || res.JSON200.NextCursor == nil) {
		err = errors.New("the answer has no next_cursor")
	}
	if err != nil {
		return "", fmt.Errorf("no cursor after page %d (status %d): %w", n, resp.StatusCode, err)
	}
	return *res.JSON200.NextCursor, nil
}

func ptr[T any](v T) *T { return &v }

func sampleIDs(ctx context.Context, db *sql.DB, n int) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT id FROM users WHERE is_deleted = FALSE ORDER BY id LIMIT ?", n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// watchRSS samples the server's resident memory from its /metrics every 500 ms.
func watchRSS(ctx context.Context, client *http.Client, url string, maxRSS *atomic.Int64) func() {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for ctx.Err() == nil {
			if v := int64(scrapeMetric(ctx, client, url, "process_resident_memory_bytes")); v > maxRSS.Load() {
				maxRSS.Store(v)
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return cancel
}

// Table renders rows as the markdown table of docs/performance.md.
func Table(rows []Row, rss int64, o Options, users int64) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Measured %s on %s (%d CPUs, %s), %d users, concurrency %d, %s per endpoint; server RSS peak %.0f MB.\n\n",
		time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU(), runtime.GOARCH, users, o.Concurrency, o.Duration, float64(rss)/1e6)
	b.WriteString("| Endpoint | req/s | p50 | p95 | p99 | errors | ratio to raw | CPU µs/req: client | service | database | Redis |\n" +
		"|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
	us := func(v float64) string {
		if v < 0 {
			return "n/a"
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	for _, r := range rows {
		ratio := ""
		if r.Baseline != "" {
			ratio = fmt.Sprintf("%.2fx %s", r.Ratio, strings.TrimPrefix(r.Baseline, "raw: "))
		}
		if r.Baseline2 != "" {
			ratio += fmt.Sprintf("; %.2fx %s", r.Ratio2, strings.TrimPrefix(r.Baseline2, "raw: "))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", r.Name, r.Rate, round(r.P50), round(r.P95), round(r.P99), r.Errors, ratio,
			us(r.CPU.Client), us(r.CPU.Service), us(r.CPU.DB), us(r.CPU.Redis))
	}
	return b.String()
}
