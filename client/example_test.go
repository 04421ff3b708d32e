package client_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/client"
	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

// The service the example calls: the real binary, built and started by TestMain on a fresh
// database of TEST_DATABASE_URL's server and TEST_REDIS_URL's Redis (what `make test` sets).
var (
	serviceURL, apiKey string
	database           *mysql.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "client example:", err); return 1 }
	dir, err := os.MkdirTemp("", "usersvc-client")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "usersvc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/usersvc/usersvc/cmd/usersvc").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("build: %w %s", err, out))
	}
	cfg, drop, err := testdb.Fresh(context.Background(), "client")
	if err != nil {
		return fail(err)
	}
	defer drop()
	database = cfg
	redisURL := os.Getenv(testdb.RedisEnvVar)
	if redisURL == "" {
		return fail(fmt.Errorf("set %s (make test does)", testdb.RedisEnvVar))
	}
	env := append(os.Environ(), "DATABASE_URL="+testdb.URL(cfg), "REDIS_URL="+redisURL,
		"REDIS_KEY_PREFIX=usersvc-client-"+strings.ToLower(testdb.Letters(8)), "RATE_LIMIT_PER_MINUTE=100000",
		"PII_ENCRYPTION_KEYS=c1:"+vault.NewKeyMaterial(), "BLIND_INDEX_KEY="+vault.NewKeyMaterial(),
		"LOG_HASH_SECRET=client-example-secret-client-example", "SHUTDOWN_DELAY=0s")
	create := exec.Command(bin, "apikey", "create", "--name", "example", "--scopes", strings.Join(auth.AllScopes, ","))
	create.Env = env
	key, err := create.Output()
	if err != nil {
		return fail(fmt.Errorf("apikey create: %w", err))
	}
	apiKey = strings.TrimSpace(string(key))
	port := testdb.FreePort(&testing.T{})
	serve := exec.Command(bin, "serve")
	var logs bytes.Buffer
	serve.Env, serve.Stdout, serve.Stderr = append(env, fmt.Sprintf("PORT=%d", port)), &logs, &logs
	if err := serve.Start(); err != nil {
		return fail(err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	serviceURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if resp, err := http.Get(serviceURL + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			return fail(fmt.Errorf("the service did not start:\n%s", logs.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, logs.String())
	}
	return code
}

func ptr[T any](v T) *T { return &v }

// Example calls every endpoint of the service through the client, as a program outside this
// module would after `go get github.com/usersvc/usersvc/client`.
func Example() {
	ctx := context.Background()
	c, err := client.New(serviceURL, apiKey)
	if err != nil {
		panic(err)
	}
	created, err := c.CreateUserWithResponse(ctx, nil, client.UserCreate{
		Name: "Rajesh Kumar", Email: "rajesh@example.com", PrimaryMobile: "+91 98765 43210",
		Aadhaar: "2341 2341 2346", Pan: "AAPPV8261K", DateOfBirth: "1995-06-15", PlaceOfBirth: "Mumbai, Maharashtra",
		CurrentAddress: "123 MG Road, Andheri West, Mumbai - 400053", PermanentAddress: "456 Park Street, Bandra East, Mumbai - 400051",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("create", created.StatusCode())
	id := created.JSON201.Id.String()
	show := func(what string, status int, err error) {
		if err != nil {
			panic(err)
		}
		fmt.Println(what, status)
	}
	got, err := c.GetUserWithResponse(ctx, id)
	show("get", got.StatusCode(), err)
	// No If-Match given: the client sends the ETag it last saw for this user.
	patched, err := c.PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: ptr("Rajesh Kumar Singh")})
	show("patch", patched.StatusCode(), err)
	put, err := c.UpdateUserWithResponse(ctx, id, nil, client.UserUpdate{CurrentAddress: ptr("7 FC Road, Shivajinagar, Pune - 411005")})
	show("put", put.StatusCode(), err)
	list, err := c.ListUsersWithResponse(ctx, nil)
	show("list", list.StatusCode(), err)
	n := 0
	for _, err := range c.Users(ctx, 2) { // two per page: the walk follows the cursors
		if err != nil {
			panic(err)
		}
		n++
	}
	fmt.Println("walked every user", n == list.JSON200.Total)
	found, err := c.SearchUsersWithResponse(ctx, &client.SearchUsersParams{Q: "rajesh"})
	show("search", found.StatusCode(), err)
	looked, err := c.LookupUserWithResponse(ctx, client.LookupRequest{Pan: ptr("AAPPV8261K")})
	show("lookup", looked.StatusCode(), err)
	hist, err := c.UserAuditWithResponse(ctx, id, nil)
	show("audit", hist.StatusCode(), err)
	exp, err := c.ExportUserWithResponse(ctx, id)
	show("export", exp.StatusCode(), err)
	imp, err := c.ImportUsersWithBodyWithResponse(ctx, "application/x-ndjson", strings.NewReader(
		`{"name":"Priya Sharma","email":"priya@example.com","primary_mobile":"9876543211","aadhaar":"234123412346","pan":"AAPPV8261K",`+
			`"date_of_birth":"1990-01-01","place_of_birth":"Pune","current_address":"1 Long Road, Pune 411001","permanent_address":"1 Long Road, Pune 411001"}`+"\n"))
	show("import", imp.StatusCode(), err)
	fmt.Println(strings.Contains(string(imp.Body), `"status":"conflict"`)) // Aadhaar and PAN are Rajesh's
	del, err := c.DeleteUserWithBodyWithResponse(ctx, id, nil, "", nil)
	show("delete", del.StatusCode(), err)
	restored, err := c.RestoreUserWithBodyWithResponse(ctx, id, nil, "", nil)
	show("restore", restored.StatusCode(), err)
	erased, err := c.EraseUserWithResponse(ctx, id, client.EraseRequest{Reason: ptr("asked by the person")})
	show("erase", erased.StatusCode(), err)
	health, err := c.HealthWithResponse(ctx)
	show("health", health.StatusCode(), err)
	ready, err := c.ReadyWithResponse(ctx)
	show("ready", ready.StatusCode(), err)
	metrics, err := c.MetricsWithResponse(ctx)
	show("metrics", metrics.StatusCode(), err)
	// Output:
	// create 201
	// get 200
	// patch 200
	// put 200
	// list 200
	// walked every user true
	// search 200
	// lookup 200
	// audit 200
	// export 200
	// import 200
	// true
	// delete 200
	// restore 200
	// erase 200
	// health 200
	// ready 200
	// metrics 200
}
