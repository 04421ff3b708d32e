package importer_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/importer"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

func newService(t *testing.T) (*users.Service, *sql.DB) {
	t.Helper()
	cfg := testdb.New(t, "import")
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 16, MaxIdle: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, _ := vault.ParseKeyring("i1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	return users.NewService(db, vault.New(keys, nil), nil), db
}

// person is a valid create object with unique values.
func person(n int) map[string]string {
	return map[string]string{
		"name": fmt.Sprintf("Imported Person %d", n), "email": fmt.Sprintf("imported.%d.%s@example.com", n, testdb.Digits(8)),
		"primary_mobile": testdb.Mobile(), "date_of_birth": "1991-07-04", "place_of_birth": "Indore",
		"aadhaar": testdb.Aadhaar(), "pan": testdb.PAN(), "current_address": "5 Rajwada, Indore",
		"permanent_address": "6 Palasia, Indore",
	}
}

func ndjson(t *testing.T, objs ...any) string {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		if s, ok := o.(string); ok {
			b.WriteString(s + "\n")
			continue
		}
		j, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteString("\n")
	}
	return b.String()
}

func run(t *testing.T, svc *users.Service, in string, o importer.Options) ([]importer.Result, importer.Summary) {
	t.Helper()
	var mu sync.Mutex
	var out []importer.Result
	o.DecodeJSON, o.Actor, o.RequestID = httpapi.DecodeImportLine, "apikey:importer", "req-import"
	o.Result = func(r importer.Result) error { mu.Lock(); out = append(out, r); mu.Unlock(); return nil }
	sum, err := importer.Run(context.Background(), svc, strings.NewReader(in), o)
	if err != nil {
		t.Fatal(err)
	}
	return out, sum
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestImport imports a file of valid and bad lines in small chunks on several workers: every line
// gets its result, in line order; the valid lines are users exactly as a create makes them
// (readable with their full identifiers, audited, pending as events, counted, searchable); the
// bad ones are reported and create nothing; and importing the file again creates nothing.
func TestImport(t *testing.T) {
	svc, db := newService(t)
	ctx := context.Background()
	// A user who is there before the import.
	before := person(0)
	var verr users.ValidationError
	str := func(s string) *string { return &s }
	old, err := svc.Create(ctx, users.Caller{Actor: "tester"}, users.ParseNewUser(users.CreateFields{
		Name: str(before["name"]), Email: str(before["email"]), PrimaryMobile: str(before["primary_mobile"]),
		DateOfBirth: str(before["date_of_birth"]), PlaceOfBirth: str(before["place_of_birth"]), Aadhaar: str(before["aadhaar"]),
		PAN: str(before["pan"]), CurrentAddress: str(before["current_address"]), PermanentAddress: str(before["permanent_address"]),
	}, time.Now(), &verr))
	if err != nil {
		t.Fatal(err)
	}

	var lines []any
	want := map[int]string{} // line -> status
	valid := map[int]map[string]string{}
	for i := 1; i <= 150; i++ {
		p := person(i)
		lines = append(lines, p)
		want[len(lines)], valid[len(lines)] = importer.Created, p
	}
	add := func(status string, o any) { lines = append(lines, o); want[len(lines)] = status }
	add(importer.Invalid, `{"name": "broken`) // not JSON
	add(importer.Invalid, `[1, 2]`)           // not an object
	bad := person(1000)
	bad["aadhaar"] = "1234 5678 9012" // fails Verhoeff
	add(importer.Invalid, bad)
	unknown := map[string]any{"is_admin": true}
	for k, v := range person(1001) {
		unknown[k] = v
	}
	add(importer.Invalid, unknown)
	add(importer.Exists, valid[3]) // the same person again, later in the file
	sameEmail := person(1002)
	sameEmail["email"] = before["email"]
	add(importer.Exists, sameEmail) // the email of a user already there
	takenMobile := person(1003)
	takenMobile["primary_mobile"] = before["primary_mobile"]
	add(importer.Conflict, takenMobile)
	takenAadhaar := person(1004)
	takenAadhaar["aadhaar"] = valid[7]["aadhaar"] // an earlier line's Aadhaar, another email
	add(importer.Conflict, takenAadhaar)
	lines = append(lines, "   ") // a blank line: skipped, but counted in the numbering
	for i := 1; i <= 40; i++ {
		p := person(2000 + i)
		lines = append(lines, p)
		want[len(lines)], valid[len(lines)] = importer.Created, p
	}
	in := ndjson(t, lines...)

	results, sum := run(t, svc, in, importer.Options{Chunk: 23, Workers: 3})
	if len(results) != len(want) || sum.Lines != len(want) || sum.Created != 190 || sum.Invalid != 4 || sum.Exists != 2 || sum.Conflict != 2 {
		t.Fatalf("%d results, summary %+v", len(results), sum)
	}
	ids := map[string]bool{}
	prev := 0
	for _, r := range results {
		if r.Line <= prev {
			t.Fatalf("line %d after line %d: not in line order", r.Line, prev)
		}
		prev = r.Line
		if r.Status != want[r.Line] {
			t.Fatalf("line %d: %+v, want %s", r.Line, r, want[r.Line])
		}
		switch r.Status {
		case importer.Created:
			ids[r.ID] = true
			u, err := svc.Get(ctx, users.Caller{Actor: "tester"}, r.ID, true)
			p := valid[r.Line]
			if err != nil || u.Email != p["email"] || u.Aadhaar.Digits() != strings.ReplaceAll(p["aadhaar"], " ", "") || u.PAN.Value() != p["pan"] ||
				u.CreatedBy != "apikey:importer" || u.PrimaryMobile != p["primary_mobile"] {
				t.Fatalf("line %d: user %s read back wrong (%v)", r.Line, r.ID, err)
			}
		case importer.Invalid:
			if len(r.Errors) == 0 || r.ID != "" {
				t.Fatalf("line %d: invalid without errors: %+v", r.Line, r)
			}
		case importer.Conflict:
			if len(r.Fields) != 1 {
				t.Fatalf("line %d: %+v", r.Line, r)
			}
		}
	}
	for _, r := range results {
		if r.Line == 156 && r.ID != old.ID { // the line with the email of the user there before
			t.Fatalf("exists line: %+v, want id %s", r, old.ID)
		}
	}
	if len(ids) != 190 || count(t, db, "SELECT COUNT(*) FROM users") != 191 {
		t.Fatalf("%d distinct ids created, %d users", len(ids), count(t, db, "SELECT COUNT(*) FROM users"))
	}
	if n := count(t, db, "SELECT COUNT(*) FROM user_audit WHERE action = 'create' AND actor = 'apikey:importer' AND request_id = 'req-import' AND event_pending = TRUE"); n != 190 {
		t.Fatalf("%d pending create audit rows for 190 imported users", n)
	}
	if n := count(t, db, "SELECT COALESCE(SUM(live), 0) FROM user_time_counts WHERE unit = 0"); n != 191 {
		t.Fatalf("live total %d, want 191", n)
	}
	page, err := svc.Search(ctx, "Imported Person 2017", users.Page{Number: 1, Size: 10})
	if err != nil || page.Total != 1 {
		t.Fatalf("search finds the imported user: %+v %v", page.Total, err)
	}

	// The same file again: nothing is created twice.
	again, sum2 := run(t, svc, in, importer.Options{Chunk: 50, Workers: 2})
	if sum2.Created != 0 || sum2.Exists != 192 || count(t, db, "SELECT COUNT(*) FROM users") != 191 {
		t.Fatalf("re-run: %+v, %d users", sum2, count(t, db, "SELECT COUNT(*) FROM users"))
	}
	for i, r := range again {
		if results[i].Status == importer.Created && (r.Status != importer.Exists || r.ID != results[i].ID) {
			t.Fatalf("re-run line %d: %+v, first run %+v", r.Line, r, results[i])
		}
	}
}

// TestImportCheckRace: a create takes a chunk's first email between the chunk's check and its
// insert. The chunk's insert fails on the duplicate and falls back to one create per line: that
// line is "exists" with the other create's id, and the rest of the chunk is created.
func TestImportCheckRace(t *testing.T) {
	svc, db := newService(t)
	var lines []any
	for i := 0; i < 12; i++ {
		lines = append(lines, person(i))
	}
	var taker string
	restore := importer.SetAfterCheck(func(nu users.NewUser) {
		if taker != "" {
			return
		}
		other := nu
		other.PrimaryMobile, other.Aadhaar, other.PAN = mustMobile(t), mustAadhaar(t), mustPAN(t)
		u, err := svc.Create(context.Background(), users.Caller{Actor: "racer"}, other)
		if err != nil {
			t.Error(err)
		}
		taker = u.ID
	})
	defer restore()
	results, sum := run(t, svc, ndjson(t, lines...), importer.Options{Chunk: 12, Workers: 1})
	if sum.Created != 11 || sum.Exists != 1 || results[0].Status != importer.Exists || results[0].ID != taker {
		t.Fatalf("%+v: %+v", sum, results)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM users"); n != 12 {
		t.Fatalf("%d users, want the racer's and 11 imported", n)
	}
}

func mustMobile(t *testing.T) string {
	m, err := users.ParseMobile(testdb.Mobile())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustAadhaar(t *testing.T) govid.Aadhaar {
	a, err := govid.ParseAadhaar(testdb.Aadhaar())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustPAN(t *testing.T) govid.PAN {
	p, err := govid.ParsePAN(testdb.PAN())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImportsRacing runs two imports of the same file at once: every person is created once, and
// each line of either run is created or exists with the same id.
func TestImportsRacing(t *testing.T) {
	svc, db := newService(t)
	var lines []any
	for i := 0; i < 120; i++ {
		lines = append(lines, person(i))
	}
	in := ndjson(t, lines...)
	var wg sync.WaitGroup
	res := make([][]importer.Result, 2)
	for k := 0; k < 2; k++ {
		wg.Add(1)
		go func(k int) { defer wg.Done(); res[k], _ = run(t, svc, in, importer.Options{Chunk: 30, Workers: 2}) }(k)
	}
	wg.Wait()
	if n := count(t, db, "SELECT COUNT(*) FROM users"); n != 120 {
		t.Fatalf("%d users for 120 people imported twice at once", n)
	}
	for i := range res[0] {
		a, b := res[0][i], res[1][i]
		if a.ID == "" || a.ID != b.ID || (a.Status != importer.Created && a.Status != importer.Exists) || (b.Status != importer.Created && b.Status != importer.Exists) {
			t.Fatalf("line %d: %+v and %+v", a.Line, a, b)
		}
	}
}

// TestImportCSV: a CSV with a header of create fields; an empty cell is an absent field; a row
// with the wrong number of cells or a broken quote is an invalid line, and the rest imports.
func TestImportCSV(t *testing.T) {
	svc, _ := newService(t)
	cols := []string{"name", "email", "primary_mobile", "date_of_birth", "place_of_birth", "aadhaar", "pan", "current_address", "permanent_address", "secondary_mobile"}
	row := func(p map[string]string) string {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = `"` + p[c] + `"`
		}
		return strings.Join(cells, ",")
	}
	noName := person(3)
	noName["name"] = ""
	in := strings.Join([]string{strings.Join(cols, ","), row(person(1)), row(person(2)), "a,b", row(noName), `"x,"y"` + strings.Repeat(",", 9), row(person(4))}, "\n") + "\n"
	results, sum := run(t, svc, in, importer.Options{Format: importer.CSV, Chunk: 2})
	if sum.Created != 3 || sum.Invalid != 3 {
		t.Fatalf("summary %+v: %+v", sum, results)
	}
	if r := results[3]; r.Line != 5 || r.Status != importer.Invalid || r.Errors[0].Field != "name" {
		t.Fatalf("the row without a name: %+v", r)
	}
}

// TestImportLongLine: a line longer than MaxLine is one invalid line; the next line imports.
func TestImportLongLine(t *testing.T) {
	svc, _ := newService(t)
	long := person(1)
	long["current_address"] = strings.Repeat("a", importer.MaxLine)
	results, sum := run(t, svc, ndjson(t, long, person(2)), importer.Options{})
	if sum.Created != 1 || sum.Invalid != 1 || results[0].Errors[0].Field != "line" || results[1].Line != 2 {
		t.Fatalf("%+v %+v", sum, results)
	}
}
