package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/usersvc/usersvc/client"
	"github.com/usersvc/usersvc/internal/testdb"
)

// TestFleetThroughClient drives three replicas through the typed client (package client), one
// client per replica: every endpoint answers as documented whichever replica serves it, a write
// made through one replica is seen by the others, and a client that has not seen another client's
// change gets 412 (the client sends the ETag it last saw) until it reads again.
func TestFleetThroughClient(t *testing.T) {
	bases := fleet(t, 3, redisEnv(t, "single"))
	key := strings.TrimPrefix(bearer, "Bearer ")
	cs := make([]*client.API, len(bases))
	for i, b := range bases {
		var err error
		if cs[i], err = client.New(b, key); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	want := func(what string, got, code int, err error) {
		t.Helper()
		if err != nil || got != code {
			t.Fatalf("%s: %d (%v), want %d", what, got, err, code)
		}
	}
	str := func(s string) *string { return &s }
	tag := strings.ToLower(testdb.Letters(8))
	created, err := cs[0].CreateUserWithResponse(ctx, nil, client.UserCreate{
		Name: "Client Fleet " + tag, Email: "client.fleet." + tag + "@example.com", PrimaryMobile: testdb.Mobile(),
		Aadhaar: testdb.Aadhaar(), Pan: testdb.PAN(), DateOfBirth: "1990-01-01", PlaceOfBirth: "Pune",
		CurrentAddress: "1 Long Road, Pune 411001", PermanentAddress: "1 Long Road, Pune 411001",
	})
	want("create on replica 1", created.StatusCode(), http.StatusCreated, err)
	id := created.JSON201.Id.String()
	got, err := cs[1].GetUserWithResponse(ctx, id)
	want("get on replica 2", got.StatusCode(), http.StatusOK, err)
	p, err := cs[1].PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: str("Changed On Two " + tag)})
	want("patch on replica 2", p.StatusCode(), http.StatusOK, err)
	stale, err := cs[0].PatchUserWithResponse(ctx, id, nil, client.UserUpdate{Name: str("Changed On One")})
	want("replica 1's client patching over a change it has not seen", stale.StatusCode(), http.StatusPreconditionFailed, err)
	_, _ = cs[0].GetUserWithResponse(ctx, id)
	put, err := cs[0].UpdateUserWithResponse(ctx, id, nil, client.UserUpdate{CurrentAddress: str("2 Short Road, Pune 411002")})
	want("put on replica 1 after reading again", put.StatusCode(), http.StatusOK, err)

	c := cs[2]
	list, err := c.ListUsersWithResponse(ctx, nil)
	want("list", list.StatusCode(), http.StatusOK, err)
	n := 0
	for _, err := range c.Users(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != list.JSON200.Total {
		t.Fatalf("the cursor walk saw %d users, the list counts %d", n, list.JSON200.Total)
	}
	found, err := c.SearchUsersWithResponse(ctx, &client.SearchUsersParams{Q: tag})
	want("search", found.StatusCode(), http.StatusOK, err)
	if found.JSON200.Total != 1 {
		t.Fatalf("search %q found %d", tag, found.JSON200.Total)
	}
	looked, err := c.LookupUserWithResponse(ctx, client.LookupRequest{Pan: &got.JSON200.Pan})
	want("lookup", looked.StatusCode(), http.StatusOK, err)
	hist, err := c.UserAuditWithResponse(ctx, id, nil)
	want("audit", hist.StatusCode(), http.StatusOK, err)
	exp, err := c.ExportUserWithResponse(ctx, id)
	want("export", exp.StatusCode(), http.StatusOK, err)
	var line bytes.Buffer // one line of NDJSON
	if err := json.Compact(&line, []byte(newUserJSON(true))); err != nil {
		t.Fatal(err)
	}
	imp, err := c.ImportUsersWithBodyWithResponse(ctx, "application/x-ndjson", strings.NewReader(line.String()+"\n"))
	want("import", imp.StatusCode(), http.StatusOK, err)
	if !strings.Contains(string(imp.Body), `"status":"created"`) {
		t.Fatalf("import: %s", imp.Body)
	}
	if stale, err := cs[1].DeleteUserWithBodyWithResponse(ctx, id, nil, "", nil); err != nil || stale.StatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("replica 2's client deleting after replica 1's put it has not seen: %v %d, want 412", err, stale.StatusCode())
	}
	_, _ = cs[1].GetUserWithResponse(ctx, id)
	del, err := cs[1].DeleteUserWithBodyWithResponse(ctx, id, nil, "", nil)
	want("delete on replica 2", del.StatusCode(), http.StatusOK, err)
	res, err := cs[2].RestoreUserWithBodyWithResponse(ctx, id, nil, "", nil)
	want("restore on replica 3", res.StatusCode(), http.StatusOK, err)
	er, err := cs[0].EraseUserWithResponse(ctx, id, client.EraseRequest{Reason: str("client fleet test")})
	want("erase on replica 1", er.StatusCode(), http.StatusOK, err)
	gone, err := cs[2].GetUserWithResponse(ctx, id)
	want("get after erasure", gone.StatusCode(), http.StatusNotFound, err)
	for _, c := range cs {
		h, err := c.HealthWithResponse(ctx)
		want("health", h.StatusCode(), http.StatusOK, err)
		r, err := c.ReadyWithResponse(ctx)
		want("ready", r.StatusCode(), http.StatusOK, err)
		m, err := c.MetricsWithResponse(ctx)
		want("metrics", m.StatusCode(), http.StatusOK, err)
	}
}
