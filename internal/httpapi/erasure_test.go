package httpapi_test

// Regression tests for issue 12's findings about erasure and the search index: no copy of a
// person's old values survives an erasure or a rename.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/usersvc/usersvc/internal/search"
)

// TestErasureLeavesNoCopy: after an erasure no stored copy of the person remains: not in the
// replays of its Idempotency-Keys (Redis), not in any table, not in the search index; and a retry
// of a keyed request about the person answers 410 Gone without personal data.
func TestErasureLeavesNoCopy(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	tag := strings.ToLower(randLetters(8))
	p := newPerson().with("name", "Zyxwq Qjvbk "+tag, "place_of_birth", "Placeofbirth "+tag,
		"current_address", "Currentaddress "+tag+" Road, Pune", "permanent_address", "Permanentaddress "+tag+" Lane, Goa")
	key := "erase-" + tag
	r := e.do(t, "POST", "/api/v1/users", p, "Idempotency-Key", key)
	if r.Code != 201 {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	id := r.JSON(t)["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil { // the postings are in the index now
		t.Fatal(err)
	}
	patch := map[string]any{"current_address": "Newaddress " + tag + " Street, Delhi"}
	if r := e.do(t, "PATCH", "/api/v1/users/"+id, patch, "Idempotency-Key", key+"-patch"); r.Code != 200 {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "POST", "/api/v1/users", p, "Idempotency-Key", key); r.Code != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay before erasure: %d %s", r.Code, r.Body)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "POST", "/api/v1/users/"+id+"/erase", nil); r.Code != 200 {
		t.Fatalf("erase: %d %s", r.Code, r.Body)
	}

	values := []string{p["name"].(string), p["email"].(string), p["primary_mobile"].(string), p["place_of_birth"].(string),
		p["current_address"].(string), p["permanent_address"].(string), "Newaddress " + tag, "Zyxwq", tag}
	// Retries of both keys: 410, nothing personal.
	for _, rq := range []struct {
		method, path, key string
		body              any
	}{{"POST", "/api/v1/users", key, p}, {"PATCH", "/api/v1/users/" + id, key + "-patch", patch}} {
		r := e.do(t, rq.method, rq.path, rq.body, "Idempotency-Key", rq.key)
		if r.Code != http.StatusGone || r.JSON(t)["code"] != "idempotency_key_erased" {
			t.Errorf("%s retry after erasure: %d %s", rq.method, r.Code, r.Body)
		}
		for _, v := range values {
			if strings.Contains(string(r.Body), v) {
				t.Errorf("%s retry after erasure answers personal data", rq.method)
			}
		}
	}
	// Every Redis value under the environment's prefix, stored bodies decoded.
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var dump strings.Builder
		switch e.rdb.Type(ctx, k).Val() {
		case "string":
			raw := e.rdb.Get(ctx, k).Val()
			dump.WriteString(raw)
			var rec struct{ Body []byte }
			if json.Unmarshal([]byte(raw), &rec) == nil {
				dump.Write(rec.Body)
			}
		case "set":
			dump.WriteString(strings.Join(e.rdb.SMembers(ctx, k).Val(), ","))
		}
		if strings.Contains(dump.String(), id) {
			t.Errorf("redis key %s still refers to the erased user", k)
		}
		for _, v := range values {
			if strings.Contains(dump.String(), v) {
				t.Errorf("redis key %s holds a value of the erased person", k)
			}
		}
	}
	// Every table, every column.
	tables, err := queryStrings(ctx, e.db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		lines, err := queryStrings(ctx, e.db, "SELECT CONCAT_WS('|', "+columnsOf(ctx, e.db, table)+") FROM `"+table+"`")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			for _, v := range values {
				if strings.Contains(line, v) {
					t.Errorf("table %s holds a value of the erased person", table)
				}
			}
		}
	}
	var fp []byte
	if err := e.db.QueryRow("SELECT fingerprint FROM idempotency_keys WHERE user_id = ? LIMIT 1", id).Scan(&fp); err != nil || strings.Trim(string(fp), "\x00") != "" {
		t.Errorf("the idempotency row keeps the request's fingerprint (%v)", err)
	}
	// The index: the seq is under none of the person's grams.
	if held := gramsHolding(t, e, seq, search.DocGrams(p["name"].(string), p["email"].(string))); len(held) > 0 {
		t.Errorf("after erasure %d grams of the person's name and email still hold its seq: %q", len(held), held)
	}
}

// TestRenameForgetsOldGrams: a changed name or email cannot be rebuilt from the index.
func TestRenameForgetsOldGrams(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := newPerson().with("name", "Oldname Vqzx "+strings.ToLower(randLetters(6)))
	u := e.create(t, p)
	id := u["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	newEmail := "renamed." + strings.ToLower(randLetters(8)) + "@example.org"
	remember(sensitive.contact, newEmail)
	if r := e.do(t, "PATCH", "/api/v1/users/"+id, map[string]any{"name": "Newname Person", "email": newEmail}); r.Code != 200 {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}
	old := search.DocGrams(p["name"].(string), p["email"].(string))
	cur := map[string]bool{}
	for _, g := range search.DocGrams("Newname Person", newEmail) {
		cur[g] = true
	}
	var onlyOld []string
	for _, g := range old {
		if !cur[g] {
			onlyOld = append(onlyOld, g)
		}
	}
	if held := gramsHolding(t, e, seq, onlyOld); len(held) > 0 {
		t.Errorf("after the rename the old grams %q still hold the user", held)
	}
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	if held := gramsHolding(t, e, seq, search.DocGrams("Newname Person", newEmail)); len(held) != len(cur) {
		t.Errorf("after compaction the user is under %d of its %d new grams", len(held), len(cur))
	}
	r := e.do(t, "GET", "/api/v1/users/search?q=Newname+Person", nil)
	if r.Code != 200 || !strings.Contains(string(r.Body), id) {
		t.Errorf("search for the new name: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", "/api/v1/users/search?q="+url.QueryEscape(p["name"].(string)), nil); strings.Contains(string(r.Body), id) {
		t.Errorf("search for the old name still finds the user")
	}
}

// gramsHolding decodes every segment bitmap of grams and returns the grams whose postings hold seq.
func gramsHolding(t *testing.T, e *env, seq uint32, grams []string) []string {
	t.Helper()
	var held []string
	for _, g := range grams {
		for _, blob := range segmentBlobs(t, e, g) {
			b := roaring.New()
			if err := b.UnmarshalBinary(blob); err != nil {
				t.Fatal(err)
			}
			if b.Contains(seq) {
				held = append(held, g)
			}
		}
	}
	return held
}

func segmentBlobs(t *testing.T, e *env, gram string) [][]byte {
	t.Helper()
	rows, err := e.db.Query("SELECT seqs FROM search_segments WHERE gram = ?", []byte(gram))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			t.Fatal(err)
		}
		out = append(out, blob)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRebuildDropsLegacyPostings: postings that an older version left behind for a changed value
// (simulated by changing the row directly, without search.Forget) are gone after a rebuild.
func TestRebuildDropsLegacyPostings(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := newPerson().with("name", "Legacyname Wqxz")
	id := e.create(t, p)["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec("UPDATE users SET name = 'Other Person' WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	old := search.DocGrams("Legacyname Wqxz", "")
	if held := gramsHolding(t, e, seq, old); len(held) == 0 {
		t.Fatal("the simulated legacy postings are not there")
	}
	if _, err := search.Rebuild(ctx, e.db, nil); err != nil {
		t.Fatal(err)
	}
	cur := map[string]bool{}
	for _, g := range search.DocGrams("Other Person", p["email"].(string)) {
		cur[g] = true
	}
	for _, g := range gramsHolding(t, e, seq, old) {
		if !cur[g] {
			t.Errorf("after the rebuild the old gram %q still holds the user", g)
		}
	}
	if r := e.do(t, "GET", "/api/v1/users/search?q=Other+Person", nil); !strings.Contains(string(r.Body), id) {
		t.Errorf("search after the rebuild: %s", r.Body)
	}
}
