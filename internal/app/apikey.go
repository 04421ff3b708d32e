package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

func runAPIKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: usersvc apikey create|list|revoke")
	}
	_, db, err := openMain(ctx, getenv, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	q := sqlcgen.New(db)
	switch args[0] {
	case "create":
		fs := newFlagSet("apikey create", stderr)
		name := fs.String("name", "", "a unique name for the key (who or what uses it)")
		scopes := fs.String("scopes", "", "comma-separated scopes: "+strings.Join(auth.AllScopes, ","))
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if strings.TrimSpace(*name) == "" || len(*name) > 100 {
			return errors.New("--name is required (at most 100 characters)")
		}
		list, err := auth.ParseScopes(*scopes)
		if err != nil {
			return fmt.Errorf("--scopes: %w", err)
		}
		key, id, err := auth.Create(ctx, db, strings.TrimSpace(*name), list, time.Now())
		var dup *mysqldb.DuplicateKeyError
		if errors.As(mysqldb.Translate(err), &dup) {
			return fmt.Errorf("a key named %q exists already", *name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created key %s (%s) with scopes %s; it is shown only now\n", id, *name, strings.Join(list, ","))
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		rows, err := q.ListAPIKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tLAST USED\tREVOKED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, strings.ReplaceAll(r.Scopes, " ", ","),
				r.CreatedAt.UTC().Format(time.RFC3339), nullTime(r.LastUsedAt.Time, r.LastUsedAt.Valid), nullTime(r.RevokedAt.Time, r.RevokedAt.Valid))
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return errors.New("usage: usersvc apikey revoke NAME-or-ID")
		}
		n, err := q.RevokeAPIKey(ctx, sqlcgen.RevokeAPIKeyParams{
			RevokedAt: sqlNullTime(time.Now().UTC()), ID: args[1], Name: args[1],
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no active key with id or name %q", args[1])
		}
		fmt.Fprintf(stderr, "revoked %s (within %s on every replica)\n", args[1], auth.NewKeyStore(nil).CacheTTL)
		return nil
	}
	return fmt.Errorf("unknown apikey command %q", args[0])
}

func nullTime(t time.Time, valid bool) string {
	if !valid {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func sqlNullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: true} }
