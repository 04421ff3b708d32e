package httpapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/usersvc/usersvc/internal/livecounts"
)

func TestCursorPagination(t *testing.T) {
	e := newEnv(t, true)
	var want []string
	for i := 0; i < 23; i++ {
		want = append([]string{e.create(t, newPerson())["id"].(string)}, want...) // newest first
	}
	var got []string
	path := "/api/v1/users/?page_size=10&cursor="
	first := true
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("cursor walk does not end")
		}
		var r response
		if first {
			r = e.do(t, "GET", "/api/v1/users/?page_size=10", nil)
			first = false
		} else {
			r = e.do(t, "GET", path, nil)
		}
		if r.Code != 200 {
			t.Fatalf("%s: %d %s", path, r.Code, r.Body)
		}
		page := r.JSON(t)
		if page["total"].(float64) != 23 {
			t.Errorf("total %v", page["total"])
		}
		for _, d := range page["data"].([]any) {
			got = append(got, d.(map[string]any)["id"].(string))
		}
		next, _ := page["next_cursor"].(string)
		link := r.Header.Get("Link")
		if next == "" {
			if link != "" {
				t.Errorf("Link without a next cursor: %s", link)
			}
			break
		}
		if !strings.Contains(link, `rel="next"`) || !strings.Contains(link, "cursor="+next) {
			t.Errorf("Link %q does not carry %q", link, next)
		}
		path = "/api/v1/users/?page_size=10&cursor=" + url.QueryEscape(next)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("cursor walk order:\n got %v\nwant %v", got, want)
	}
	for _, q := range []string{"cursor=nope", "cursor=c1.!!!", "cursor=c1.MTIz", "page=2&cursor=" + url.QueryEscape("c1.")} {
		if r := e.do(t, "GET", "/api/v1/users/?"+q, nil); r.Code != 422 {
			t.Errorf("%s: %d", q, r.Code)
		}
	}
}

// TestMaintainedCount: the total that lists report follows every change, and a recount agrees.
func TestMaintainedCount(t *testing.T) {
	e := newEnv(t, true)
	total := func() float64 { return e.do(t, "GET", "/api/v1/users/", nil).JSON(t)["total"].(float64) }
	a, b, c := e.create(t, newPerson()), e.create(t, newPerson()), e.create(t, newPerson())
	if total() != 3 {
		t.Fatalf("after 3 creates: %v", total())
	}
	e.do(t, "DELETE", "/api/v1/users/"+a["id"].(string), nil)
	e.do(t, "DELETE", "/api/v1/users/"+a["id"].(string), nil) // a 404 changes nothing
	if total() != 2 {
		t.Fatalf("after delete: %v", total())
	}
	e.do(t, "POST", "/api/v1/users/"+a["id"].(string)+"/restore", nil)
	e.do(t, "POST", "/api/v1/users/"+b["id"].(string)+"/erase", nil) // live -> erased
	e.do(t, "DELETE", "/api/v1/users/"+c["id"].(string), nil)
	e.do(t, "POST", "/api/v1/users/"+c["id"].(string)+"/erase", nil) // deleted -> erased: no change
	revived := e.create(t, newPerson())
	e.do(t, "DELETE", "/api/v1/users/"+revived["id"].(string), nil)
	e.create(t, newPerson().with("email", revived["email"])) // revive on create
	if got, live := total(), float64(countRows(t, e.db, "SELECT COUNT(*) FROM users WHERE is_deleted = FALSE")); got != live || got != 2 {
		t.Fatalf("maintained %v, counted %v", got, live)
	}
	n, err := livecounts.Recount(context.Background(), e.db)
	if err != nil || n != 2 || total() != 2 {
		t.Fatalf("recount: %d %v", n, err)
	}
}

// TestCursorWithTies: users sharing one created_at are each listed once, in id order.
func TestCursorWithTies(t *testing.T) {
	e := newEnv(t, true)
	for i := 0; i < 15; i++ {
		e.create(t, newPerson())
	}
	if _, err := e.db.Exec("UPDATE users SET created_at = '2026-01-01 00:00:00'"); err != nil {
		t.Fatal(err)
	}
	var want []string
	rows, err := queryStrings(context.Background(), e.db, "SELECT id FROM users ORDER BY id DESC")
	if err != nil {
		t.Fatal(err)
	}
	want = rows
	var got []string
	path := "/api/v1/users/?page_size=4"
	for i := 0; i < 10 && path != ""; i++ {
		page := e.do(t, "GET", path, nil).JSON(t)
		for _, d := range page["data"].([]any) {
			got = append(got, d.(map[string]any)["id"].(string))
		}
		path = ""
		if next, ok := page["next_cursor"].(string); ok {
			path = "/api/v1/users/?page_size=4&cursor=" + url.QueryEscape(next)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tied walk:\n got %v\nwant %v", got, want)
	}
}
