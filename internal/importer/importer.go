// Package importer creates users in bulk from NDJSON or CSV (`usersvc import`, POST
// /api/v1/users/import), with the validation and uniqueness of a create and a result per line.
//
// Lines are read in chunks; workers validate a chunk, check its unique values against the database
// in four queries (emails, mobiles, and the vault's Aadhaar and PAN blind indexes), and create the
// new users of the chunk in one transaction (users.CreateBulk). A line whose email belongs to a
// user already is "exists" (with that user's id), which makes a re-run of the same file create
// nothing twice. Should a value be taken between the check and the insert (a concurrent create),
// the chunk falls back to one create per line, which decides each line exactly as POST /users does.
// Results come out in line order; memory is bounded by the chunks in flight, whatever the size.
package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// Line statuses.
const (
	Created  = "created"  // a new user, id
	Exists   = "exists"   // the email belongs to a user already (live or soft-deleted), id
	Conflict = "conflict" // another user holds these unique values (fields)
	Invalid  = "invalid"  // the line is not a valid create (errors)
)

// Result is the outcome of one line. It never holds a personal value.
type Result struct {
	Line   int          `json:"line"`
	Status string       `json:"status"`
	ID     string       `json:"id,omitempty"`
	Fields []string     `json:"fields,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names an invalid field; the message never repeats the value.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Summary counts the lines by outcome.
type Summary struct {
	Lines    int `json:"lines"`
	Created  int `json:"created"`
	Exists   int `json:"exists"`
	Conflict int `json:"conflict"`
	Invalid  int `json:"invalid"`
}

// Options configure a run.
type Options struct {
	Format Format
	// DecodeJSON reads one NDJSON line with the rules of a create body (httpapi.DecodeImportLine).
	DecodeJSON func(line []byte, verr *users.ValidationError) (users.CreateFields, error)
	Actor      string // the audit actor (apikey:<id>, or the CLI's name)
	RequestID  string
	Chunk      int // lines per chunk (default 2000): one transaction, one search segment per gram
	Workers    int // chunks worked on at once (default 4)
	// Result, when set, receives every line's result, in line order.
	Result func(Result) error
	// ChunkDone, when set, is called after the results of each chunk (progress, flushing).
	ChunkDone func(s Summary)
}

// item is one line on its way through: read (raw NDJSON, or CSV fields), then validated (nu),
// then decided (result).
type item struct {
	line   int
	raw    []byte              // an NDJSON line
	fields *users.CreateFields // a CSV record
	nu     users.NewUser
	result *Result // set once decided
}

type chunk struct {
	seq   int
	items []item
}

// Run imports r. It returns the summary of the lines handled, and an error that stopped the
// import (the database went away; the lines before it have their results).
func Run(ctx context.Context, svc *users.Service, r io.Reader, o Options) (Summary, error) {
	db, v := svc.Stores()
	if o.Chunk <= 0 {
		o.Chunk = 2000
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	consecutive, err := users.ConsecutiveSeqs(ctx, db)
	if err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &worker{db: db, v: v, svc: svc, o: o, consecutive: consecutive}

	// In flight: at most 2 x Workers chunks between the reader and the emitter (memory bound).
	tokens := make(chan struct{}, 2*o.Workers)
	todo := make(chan chunk)
	done := make(chan chunk, 2*o.Workers)
	errc := make(chan error, o.Workers+1)
	go func() {
		defer close(todo)
		errc <- read(ctx, r, o, tokens, todo)
	}()
	for i := 0; i < o.Workers; i++ {
		go func() {
			for c := range todo {
				if err := w.work(ctx, c.items); err != nil {
					errc <- err
					cancel()
					return
				}
				select {
				case done <- c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	var sum Summary
	pending := map[int]chunk{}
	next := 0
	var firstErr error
	readerDone := false
	for {
		// Emit the chunks that are next in line.
		for c, ok := pending[next]; ok; c, ok = pending[next] {
			delete(pending, next)
			next++
			for _, it := range c.items {
				sum.add(it.result.Status)
				if o.Result != nil && firstErr == nil {
					if err := o.Result(*it.result); err != nil {
						firstErr = err
						cancel()
					}
				}
			}
			if o.ChunkDone != nil {
				o.ChunkDone(sum)
			}
			<-tokens
		}
		if readerDone && len(tokens) == 0 {
			return sum, firstErr
		}
		select {
		case c := <-done:
			pending[c.seq] = c
		case err := <-errc:
			if errors.Is(err, errEOF) {
				readerDone = true
				continue
			}
			if firstErr == nil {
				firstErr = err
			}
			cancel()
			return sum, firstErr
		}
	}
}

func (s *Summary) add(status string) {
	s.Lines++
	switch status {
	case Created:
		s.Created++
	case Exists:
		s.Exists++
	case Conflict:
		s.Conflict++
	default:
		s.Invalid++
	}
}

// afterCheck, in tests, runs between a chunk's uniqueness check and its insert, with the first
// user to create: a concurrent create can take a value there.
var afterCheck func(users.NewUser)

// worker decides and creates the lines of a chunk.
type worker struct {
	db          *sql.DB
	v           *vault.Vault
	svc         *users.Service
	o           Options
	consecutive bool
}

// work gives every item of a chunk its result.
func (w *worker) work(ctx context.Context, items []item) error {
	now := w.svc.Now()
	var fresh []*item
	for i := range items {
		it := &items[i]
		if it.result == nil {
			w.validate(it, now)
		}
		if it.result == nil {
			fresh = append(fresh, it)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	fresh, again, err := w.check(ctx, fresh)
	if err != nil {
		return err
	}
	if afterCheck != nil {
		afterCheck(fresh[0].nu)
	}
	if err := w.create(ctx, fresh); err != nil {
		return err
	}
	// Lines repeating an email of an earlier line of the chunk: that line is decided now.
	return w.oneByOne(ctx, again)
}

// validate decodes and validates an item's line, or gives it its invalid result.
func (w *worker) validate(it *item, now time.Time) {
	var verr users.ValidationError
	var f users.CreateFields
	if it.fields != nil {
		f = *it.fields
	} else {
		var err error
		if f, err = w.o.DecodeJSON(it.raw, &verr); err != nil {
			it.result = &Result{Line: it.line, Status: Invalid, Errors: []FieldError{{Field: "line", Message: err.Error()}}}
			return
		}
	}
	it.raw, it.fields = nil, nil
	it.nu = users.ParseNewUser(f, now, &verr)
	if verr.Err() != nil {
		it.result = &Result{Line: it.line, Status: Invalid}
		for _, fe := range verr.Fields {
			it.result.Errors = append(it.result.Errors, FieldError{Field: fe.Field, Message: fe.Message})
		}
	}
}

// create creates the checked items in one transaction.
func (w *worker) create(ctx context.Context, fresh []*item) error {
	if len(fresh) == 0 {
		return nil
	}
	now := w.svc.Now().UTC()
	batch := make([]users.BulkUser, len(fresh))
	for i, it := range fresh {
		batch[i] = users.BulkUser{ID: users.NewID(), User: it.nu, CreatedAt: now}
	}
	err := users.CreateBulk(ctx, w.db, w.v, batch, users.BulkOptions{Actor: w.o.Actor, RequestID: w.o.RequestID, Audit: true, Consecutive: w.consecutive})
	var dup *mysqldb.DuplicateKeyError
	switch {
	case err == nil:
		for i, it := range fresh {
			it.result = &Result{Line: it.line, Status: Created, ID: batch[i].ID}
		}
		return nil
	case errors.As(mysqldb.Translate(err), &dup):
		return w.oneByOne(ctx, fresh) // a value was taken since the check
	default:
		return err
	}
}

// check decides the items whose email exists or whose unique values are taken, in the database
// or by an earlier line of the chunk. It returns the items to create, and those that repeat the
// email of an earlier line of the chunk (decided after it).
func (w *worker) check(ctx context.Context, items []*item) (fresh, again []*item, err error) {
	q := sqlcgen.New(w.db)
	emails := make([]sql.NullString, len(items))
	mobiles := make([]sql.NullString, len(items))
	aadhaars := make([]string, len(items))
	pans := make([]string, len(items))
	for i, it := range items {
		emails[i] = sql.NullString{String: it.nu.Email.Key(), Valid: true}
		mobiles[i] = sql.NullString{String: it.nu.PrimaryMobile, Valid: true}
		aadhaars[i], pans[i] = it.nu.Aadhaar.Digits(), it.nu.PAN.Value()
	}
	takenMobiles, err := q.FindMobileHolders(ctx, mobiles)
	if err != nil {
		return nil, nil, err
	}
	mobileTaken := map[string]bool{}
	for _, m := range takenMobiles {
		mobileTaken[m.String] = true
	}
	aadhaarTaken, err := w.v.Taken(ctx, q, vault.KindAadhaar, aadhaars)
	if err != nil {
		return nil, nil, err
	}
	panTaken, err := w.v.Taken(ctx, q, vault.KindPAN, pans)
	if err != nil {
		return nil, nil, err
	}
	// The emails last: a concurrent import or create that commits during these reads then shows
	// as the email's holder ("exists"), never as the holder of a value alone ("conflict").
	holders, err := q.FindEmailHolders(ctx, emails)
	if err != nil {
		return nil, nil, err
	}
	exists := map[string]string{}
	for _, h := range holders {
		exists[h.EmailKey.String] = h.ID
	}
	// Values claimed by earlier lines of this chunk.
	seen := map[string]map[string]bool{"email": {}, "primary_mobile": {}, "aadhaar": {}, "pan": {}}
	for _, it := range items {
		nu := it.nu
		if id, ok := exists[nu.Email.Key()]; ok {
			it.result = &Result{Line: it.line, Status: Exists, ID: id}
			continue
		}
		var fields []string
		for _, f := range []struct {
			name, value string
			taken       bool
		}{
			{"email", nu.Email.Key(), false},
			{"primary_mobile", nu.PrimaryMobile, mobileTaken[nu.PrimaryMobile]},
			{"aadhaar", nu.Aadhaar.Digits(), aadhaarTaken[nu.Aadhaar.Digits()]},
			{"pan", nu.PAN.Value(), panTaken[nu.PAN.Value()]},
		} {
			if f.taken || seen[f.name][f.value] {
				fields = append(fields, f.name)
			}
		}
		switch {
		case len(fields) > 0 && fields[0] == "email":
			// An earlier line with the same email is the same person: decided after that line.
			again = append(again, it)
		case len(fields) > 0:
			it.result = &Result{Line: it.line, Status: Conflict, Fields: fields}
		default:
			for name, v := range map[string]string{"email": nu.Email.Key(), "primary_mobile": nu.PrimaryMobile, "aadhaar": nu.Aadhaar.Digits(), "pan": nu.PAN.Value()} {
				seen[name][v] = true
			}
			fresh = append(fresh, it)
		}
	}
	return fresh, again, nil
}

// oneByOne creates each item as POST /users would, after a duplicate refused the chunk's insert.
func (w *worker) oneByOne(ctx context.Context, items []*item) error {
	c := users.Caller{Actor: w.o.Actor, RequestID: w.o.RequestID}
	for _, it := range items {
		u, err := w.svc.Create(ctx, c, it.nu)
		var cerr *users.ConflictError
		switch {
		case err == nil:
			it.result = &Result{Line: it.line, Status: Created, ID: u.ID}
		case errors.As(err, &cerr) && len(cerr.Fields) > 0 && cerr.Fields[0] == "email":
			holders, herr := sqlcgen.New(w.db).FindEmailHolders(ctx, []sql.NullString{{String: it.nu.Email.Key(), Valid: true}})
			if herr != nil || len(holders) == 0 {
				return fmt.Errorf("line %d: the email's holder: %w", it.line, herr)
			}
			it.result = &Result{Line: it.line, Status: Exists, ID: holders[0].ID}
		case errors.As(err, &cerr):
			it.result = &Result{Line: it.line, Status: Conflict, Fields: cerr.Fields}
		default:
			return err
		}
	}
	return nil
}
