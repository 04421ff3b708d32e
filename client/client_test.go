package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/usersvc/usersvc/client"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
)

func newUser() client.UserCreate {
	tag := testdb.Letters(8)
	return client.UserCreate{
		Name: "Client Test " + tag, Email: "client." + tag + "@example.com", PrimaryMobile: testdb.Mobile(),
		Aadhaar: testdb.Aadhaar(), Pan: testdb.PAN(), DateOfBirth: "1990-01-01", PlaceOfBirth: "Pune",
		CurrentAddress: "1 Long Road, Pune 411001", PermanentAddress: "1 Long Road, Pune 411001",
	}
}

// TestIfMatchFromLastETag: a client that did not see another client's change gets 412 for its
// write without an explicit If-Match, since it sends the ETag it last saw; after reading again it
// succeeds.
func TestIfMatchFromLastETag(t *testing.T) {
	ctx := context.Background()
	a, _ := client.New(serviceURL, apiKey)
	b, _ := client.New(serviceURL, apiKey)
	created, err := a.CreateUserWithResponse(ctx, nil, newUser())
	if err != nil || created.JSON201 == nil {
		t.Fatalf("create: %v %s", err, created.Body)
	}
	id := created.JSON201.Id.String()
	if r, err := b.PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: ptr("Changed By B")}); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("b's patch: %v %d", err, r.StatusCode())
	}
	if r, err := a.PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: ptr("Changed By A")}); err != nil || r.StatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("a's patch over b's change it never saw: %v %d, want 412", err, r.StatusCode())
	}
	if _, err := a.GetUserWithResponse(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := a.PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: ptr("Changed By A")}); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("a's patch after reading again: %v %d", err, r.StatusCode())
	}
}

// TestCreatesCarryIdempotencyKeys: every create the client sends has an Idempotency-Key (the
// service keeps a durable row per key), so a retried create can never make two users.
func TestCreatesCarryIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	c, _ := client.New(serviceURL, apiKey)
	db, err := mysqldb.Open(ctx, database, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func() (n int) {
		if err := db.QueryRow("SELECT COUNT(*) FROM idempotency_keys").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for i := 0; i < 3; i++ {
		if r, err := c.CreateUserWithResponse(ctx, nil, newUser()); err != nil || r.StatusCode() != http.StatusCreated {
			t.Fatalf("create: %v %d", err, r.StatusCode())
		}
	}
	if n := count() - before; n != 3 {
		t.Fatalf("%d idempotency keys recorded for 3 creates", n)
	}
}

// TestRetriesKeepKeyAndBody: a create answered 503 (Retry-After: 0) is sent again with the same
// Idempotency-Key and body; a PATCH (no key) answered 503 is not sent again.
func TestRetriesKeepKeyAndBody(t *testing.T) {
	var keys, bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		keys, bodies = append(keys, r.Header.Get("Idempotency-Key")), append(bodies, string(b))
		if len(keys) < 3 || r.Method == http.MethodPatch {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "k")
	r, err := c.CreateUserWithResponse(context.Background(), nil, newUser())
	if err != nil || r.StatusCode() != http.StatusCreated || len(keys) != 3 || keys[0] == "" || keys[0] != keys[2] || bodies[0] != bodies[2] || bodies[0] == "" {
		t.Fatalf("create: %v %d after %d tries, keys %q", err, r.StatusCode(), len(keys), keys)
	}
	keys = nil
	p, err := c.PatchUserWithResponse(context.Background(), "00000000-0000-4000-8000-000000000001", nil, client.UserUpdate{Name: ptr("x")})
	if err != nil || p.StatusCode() != http.StatusServiceUnavailable || len(keys) != 1 {
		t.Fatalf("patch: %v %d after %d tries: a write without a key must not be repeated", err, p.StatusCode(), len(keys))
	}
}
