package httpapi_test

// The people the tests send, and the check that none of their personal values is stored or
// logged in plain text.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/usersvc/usersvc/internal/testdb"
)

// person is a valid create request with unique identifiers.
type person map[string]any

func randLetters(n int) string { return testdb.Letters(n) }

// sensitive records every Aadhaar, PAN, mobile and email the tests send, so that each
// environment can prove, before its database is dropped, that none of them is stored or
// logged in plain text where it must not be.
var sensitive = struct {
	sync.Mutex
	ids, contact map[string]bool
}{ids: map[string]bool{}, contact: map[string]bool{}}

func remember(kind map[string]bool, v string) string {
	sensitive.Lock()
	kind[v] = true
	sensitive.Unlock()
	return v
}

func newAadhaar() string { return remember(sensitive.ids, testdb.Aadhaar()) }
func newPAN() string     { return remember(sensitive.ids, testdb.PAN()) }
func newMobile() string  { return remember(sensitive.contact, testdb.Mobile()) }

func newPerson() person {
	tag := strings.ToLower(randLetters(10))
	return person{
		"name":              "Test User " + tag,
		"email":             remember(sensitive.contact, "user."+tag+"@example.com"),
		"primary_mobile":    newMobile(),
		"aadhaar":           newAadhaar(),
		"pan":               newPAN(),
		"date_of_birth":     "1995-06-15",
		"place_of_birth":    "Mumbai, Maharashtra",
		"current_address":   "123 MG Road, Andheri West, Mumbai - 400053",
		"permanent_address": "456 Park Street, Bandra East, Mumbai - 400051",
	}
}

func (p person) with(kv ...any) person {
	out := person{}
	for k, v := range p {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func (p person) without(keys ...string) person {
	out := p.with()
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// create posts p and requires 201; it returns the body.
func (e *env) create(t *testing.T, p person) map[string]any {
	t.Helper()
	r := e.do(t, "POST", "/api/v1/users/", p)
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	return r.JSON(t)
}

// problemFields returns the field names of a problem response's errors[].
func problemFields(t *testing.T, r response) []string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	m := r.JSON(t)
	for _, k := range []string{"type", "title", "status", "detail", "request_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, r.Body)
		}
	}
	var out []string
	errs, _ := m["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func etagOf(t *testing.T, r response) string {
	t.Helper()
	et := r.Header.Get("ETag")
	if len(et) < 3 || et[0] != '"' || et[len(et)-1] != '"' {
		t.Fatalf("bad ETag %q", et)
	}
	return et
}

// findPlaintext dumps every table of the environment's database and every Redis record it
// wrote, and fails if any Aadhaar or PAN the tests used appears in plain text; and it fails if
// the logs hold any Aadhaar, PAN, mobile, email or date of birth.
func (e *env) findPlaintext() (findings []string) {
	sensitive.Lock()
	var ids, all []string
	for v := range sensitive.ids {
		ids = append(ids, v)
	}
	for v := range sensitive.contact {
		all = append(all, v)
	}
	sensitive.Unlock()
	all = append(append(all, ids...), "1995-06-15")
	report := func(where, v string) {
		findings = append(findings, fmt.Sprintf("plaintext %s found in %s", v[:2]+strings.Repeat("*", len(v)-2), where))
	}
	ctx := context.Background()
	tables, err := queryStrings(ctx, e.db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return []string{"list tables: " + err.Error()}
	}
	for _, table := range tables {
		// Every column of every row, concatenated: binary columns too.
		lines, err := queryStrings(ctx, e.db, "SELECT CONCAT_WS('|', "+columnsOf(ctx, e.db, table)+") FROM `"+table+"`")
		if err != nil {
			findings = append(findings, "dump "+table+": "+err.Error())
			continue
		}
		for _, line := range lines {
			for _, v := range ids {
				if strings.Contains(line, v) {
					report("table "+table, v)
				}
			}
		}
	}
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		val, _ := e.rdb.Get(ctx, iter.Val()).Result()
		for _, v := range ids {
			if strings.Contains(val, v) {
				report("redis", v)
			}
		}
	}
	logs := e.logs.String()
	for _, v := range all {
		if strings.Contains(logs, v) {
			report("logs", v)
		}
	}
	return findings
}
