package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// The list, search and audit handlers: paged reads.

type pageRules struct{ def, max int }

// page reads page and page_size, adding errors to verr.
func (r pageRules) page(c *gin.Context, verr *users.ValidationError) users.Page {
	p := users.Page{Number: 1, Size: r.def}
	if v, ok := c.GetQuery("page"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 10_000_000 {
			verr.Add("page", "must be a whole number from 1 to 10000000")
		} else {
			p.Number = n
		}
	}
	if v, ok := c.GetQuery("page_size"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > r.max {
			verr.Add("page_size", "must be a whole number from 1 to "+strconv.Itoa(r.max))
		} else {
			p.Size = n
		}
	}
	return p
}

func handleUserList(svc *users.Service, log *slog.Logger, pages pageRules, cur cursors) gin.HandlerFunc {
	return func(c *gin.Context) {
		verr := &users.ValidationError{}
		p := pages.page(c, verr)
		raw, byCursor := c.GetQuery("cursor")
		var after users.Cursor
		if byCursor {
			var err error
			if after, err = cur.decode(raw); err != nil {
				verr.Add("cursor", "is not a cursor this service issued")
			}
			if _, ok := c.GetQuery("page"); ok {
				verr.Add("page", "cannot be combined with cursor")
			}
		}
		if err := verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		var res users.PageOf[users.User]
		var err error
		if byCursor {
			res, err = svc.ListAfter(c.Request.Context(), after, p.Size)
		} else {
			res, err = svc.List(c.Request.Context(), p)
		}
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		out := toPageResponse(p, res, toUserSummary)
		if byCursor {
			out.Page = nil
		}
		if len(res.Items) == p.Size {
			next := cur.encode(users.CursorOf(res.Items[len(res.Items)-1]))
			out.NextCursor = &next
			c.Header("Link", fmt.Sprintf(`</api/v1/users?cursor=%s&page_size=%d>; rel="next"`, next, p.Size))
		}
		c.JSON(http.StatusOK, out)
	}
}

func handleUserSearch(svc *users.Service, log *slog.Logger, pages pageRules) gin.HandlerFunc {
	return func(c *gin.Context) {
		verr := &users.ValidationError{}
		q := strings.TrimSpace(c.Query("q"))
		if n := utf8.RuneCountInString(q); n < users.SearchMinLen || n > users.SearchMaxLen {
			verr.Add("q", "must be 2 to 100 characters long")
		}
		p := pages.page(c, verr)
		if err := verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		res, err := svc.Search(c.Request.Context(), q, p)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		out := toPageResponse(p, res, toUserSummary)
		exact := !res.Estimated
		out.TotalExact = &exact
		c.JSON(http.StatusOK, out)
	}
}

func handleUserAudit(svc *users.Service, log *slog.Logger, pages pageRules) gin.HandlerFunc {
	return func(c *gin.Context) {
		verr := &users.ValidationError{}
		p := pages.page(c, verr)
		if err := verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		id, ok := userID(c)
		if !ok {
			writeProblem(c, log, users.ErrNotFound)
			return
		}
		res, err := svc.History(c.Request.Context(), id, p)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		c.JSON(http.StatusOK, toPageResponse(p, res, toAuditResponse))
	}
}

// Response types. Generated sqlc structs never reach JSON: these converters are the contract.
