package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/usersvc/usersvc/internal/users"
)

// Format is the input's format.
type Format string

const (
	NDJSON Format = "ndjson" // one JSON object per line, the fields of a create
	CSV    Format = "csv"    // a header row naming create fields, then one user per row
)

// MaxLine is the longest line read; a longer one is an invalid line (the rest of it is skipped).
const MaxLine = 64 << 10

// errEOF ends the reader's work.
var errEOF = errors.New("end of input")

// read cuts r into chunks of o.Chunk lines and sends them to todo, taking a token per chunk. It
// returns errEOF at the end of the input, or the error that stopped it.
func read(ctx context.Context, r io.Reader, o Options, tokens chan<- struct{}, todo chan<- chunk) error {
	seq := 0
	var items []item
	send := func() error {
		if len(items) == 0 {
			return nil
		}
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case todo <- chunk{seq: seq, items: items}:
		case <-ctx.Done():
			return ctx.Err()
		}
		seq++
		items = make([]item, 0, o.Chunk)
		return nil
	}
	add := func(it item) error {
		items = append(items, it)
		if len(items) < o.Chunk {
			return nil
		}
		return send()
	}
	var err error
	switch o.Format {
	case CSV:
		err = readCSV(r, add)
	case NDJSON, "":
		err = readNDJSON(r, add)
	default:
		err = fmt.Errorf("unknown format %q (ndjson or csv)", o.Format)
	}
	if err == nil {
		err = send()
	}
	if err == nil {
		return errEOF
	}
	return err
}

// readNDJSON reads lines; blank lines are skipped (and counted).
func readNDJSON(r io.Reader, add func(item) error) error {
	br := bufio.NewReaderSize(r, MaxLine)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		tooLong := false
		for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of an over-long line
			tooLong = true
			_, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		switch trimmed := bytes.TrimSpace(line); {
		case tooLong:
			if aerr := add(item{line: n, result: &Result{Line: n, Status: Invalid,
				Errors: []FieldError{{Field: "line", Message: fmt.Sprintf("is longer than %d bytes", MaxLine)}}}}); aerr != nil {
				return aerr
			}
		case len(trimmed) > 0:
			if aerr := add(item{line: n, raw: bytes.Clone(trimmed)}); aerr != nil {
				return aerr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// csvColumns are the columns a CSV may have.
var csvColumns = map[string]bool{"name": true, "email": true, "primary_mobile": true, "secondary_mobile": true,
	"date_of_birth": true, "place_of_birth": true, "aadhaar": true, "pan": true, "current_address": true, "permanent_address": true}

// readCSV reads a header row of create field names, then one user per row. An empty cell is an
// absent field. A row the CSV parser refuses is an invalid line.
func readCSV(r io.Reader, add func(item) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("CSV header: %w", err)
	}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !csvColumns[h] {
			return fmt.Errorf("CSV header: column %d (%q) is not a create field", i+1, h)
		}
		header[i] = h
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			if aerr := add(item{line: perr.StartLine, result: &Result{Line: perr.StartLine, Status: Invalid,
				Errors: []FieldError{{Field: "line", Message: "is not a valid CSV row: " + perr.Err.Error()}}}}); aerr != nil {
				return aerr
			}
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			if aerr := add(item{line: line, result: &Result{Line: line, Status: Invalid,
				Errors: []FieldError{{Field: "line", Message: fmt.Sprintf("has %d cells, the header %d", len(rec), len(header))}}}}); aerr != nil {
				return aerr
			}
			continue
		}
		f := &users.CreateFields{}
		for i, cell := range rec {
			if cell == "" {
				continue
			}
			v := cell
			switch header[i] {
			case "name":
				f.Name = &v
			case "email":
				f.Email = &v
			case "primary_mobile":
				f.PrimaryMobile = &v
			case "secondary_mobile":
				f.SecondaryMobile = &v
			case "date_of_birth":
				f.DateOfBirth = &v
			case "place_of_birth":
				f.PlaceOfBirth = &v
			case "aadhaar":
				f.Aadhaar = &v
			case "pan":
				f.PAN = &v
			case "current_address":
				f.CurrentAddress = &v
			case "permanent_address":
				f.PermanentAddress = &v
			}
		}
		if aerr := add(item{line: line, fields: f}); aerr != nil {
			return aerr
		}
	}
}
