package users

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/vault"
)

// Bulk creation: many new users in one transaction, with multi-row statements, for the import
// (internal/importer) and the benchmark seed. It writes what a create writes (vault entries,
// users rows, live counts, search postings, and, for an import, audit rows that are also the
// user.created events), but decides nothing: the caller has checked uniqueness, and a value taken
// meanwhile fails the whole batch with the database's duplicate-key error.

// BulkUser is one user of a bulk creation.
type BulkUser struct {
	ID        string // NewID()
	User      NewUser
	CreatedAt time.Time
}

// BulkOptions say who creates the users and how.
type BulkOptions struct {
	Actor     string // created_by, updated_by and the audit actor
	RequestID string // the audit rows' request id
	// Audit writes a create audit row per user (pending as a user.created event). The seed
	// writes none: its users were not created by anyone.
	Audit bool
	// Consecutive: a multi-row INSERT gets consecutive AUTO_INCREMENT seqs in row order
	// (innodb_autoinc_lock_mode 0 or 1, MariaDB's default; see ConsecutiveSeqs); otherwise the
	// seqs are read back (MySQL 8.0's default, 2).
	Consecutive bool
}

// NewID returns a new user id (a UUIDv7, see newID).
func NewID() string { return newID() }

// ConsecutiveSeqs tells whether the server gives a multi-row INSERT consecutive AUTO_INCREMENT
// values (innodb_autoinc_lock_mode 0 or 1).
func ConsecutiveSeqs(ctx context.Context, db *sql.DB) (bool, error) {
	var mode int
	err := db.QueryRowContext(ctx, "SELECT @@innodb_autoinc_lock_mode").Scan(&mode)
	return mode <= 1, err
}

// The bulk statements: the column lists of InsertUser (queries/users.sql) and InsertAudit
// (queries/audit.sql) as multi-row INSERTs (mysqldb.MultiRow: sqlc cannot express a variable
// number of VALUES rows). Tests keep them in step with the schema by loading rows through them and
// reading the rows back through the sqlc queries (internal/importer, internal/search).
const (
	bulkUsersPrefix = "INSERT INTO users (id, name, email, email_key, primary_mobile, secondary_mobile, date_of_birth, place_of_birth, " +
		"aadhaar_ref, pan_ref, aadhaar_last4, pan_last5, current_address, permanent_address, created_at, updated_at, created_by, updated_by, " +
		"is_deleted, version, is_active, email_verified, mobile_verified) VALUES "
	bulkUsersRow    = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?, TRUE, FALSE, FALSE)"
	bulkUsersArgs   = 19
	bulkAuditPrefix = "INSERT INTO user_audit (user_id, action, actor, request_id, changed_fields, version, created_at, event_pending) VALUES "
	bulkAuditRow    = "(?, 'create', ?, ?, ?, ?, ?, TRUE)"
	bulkAuditArgs   = 6
	// perStatement users in one INSERT keep 19 placeholders a row under MySQL's 65,535.
	perStatement = 3000
)

// CreateBulk writes batch in one transaction (the vault's entries first, in their own database
// when the vault is separate).
func CreateBulk(ctx context.Context, db *sql.DB, v *vault.Vault, batch []BulkUser, o BulkOptions) error {
	sealed := make([]vault.Sealed, 0, 2*len(batch))
	userArgs := make([]any, 0, len(batch)*bulkUsersArgs)
	var auditArgs []any
	counts := livecounts.NewBatch()
	byID := make(map[string]*NewUser, len(batch))
	ids := make([]string, len(batch))
	actor := nullString(o.Actor)
	for i, b := range batch {
		nu := b.User
		a, p := v.Seal(vault.KindAadhaar, nu.Aadhaar.Digits()), v.Seal(vault.KindPAN, nu.PAN.Value())
		sealed = append(sealed, a, p)
		counts.Add(b.CreatedAt)
		ids[i], byID[b.ID] = b.ID, &batch[i].User
		version := uuid.NewString()
		userArgs = append(userArgs, b.ID, nu.Name, nu.Email.Display(), nu.Email.Key(), nu.PrimaryMobile, nullString(nu.SecondaryMobile),
			nullDate(nu.DateOfBirth), nu.PlaceOfBirth, a.Ref, p.Ref, nu.Aadhaar.Last4(), nu.PAN.Last5(), nu.CurrentAddress, nu.PermanentAddress,
			b.CreatedAt, b.CreatedAt, actor, actor, version)
		if o.Audit {
			auditArgs = append(auditArgs, b.ID, actor, nullString(o.RequestID), strings.Join(createdFields(nu), ","), version, b.CreatedAt)
		}
	}
	if !v.Shared() {
		if err := v.InsertMany(ctx, nil, sealed); err != nil {
			return err
		}
	}
	return mysqldb.InRawTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, tx *sql.Tx) error {
		q := sqlcgen.New(tx)
		if v.Shared() {
			if err := v.InsertMany(ctx, tx, sealed); err != nil {
				return err
			}
		}
		p := search.Postings{}
		for lo := 0; lo < len(batch); lo += perStatement {
			hi := min(lo+perStatement, len(batch))
			res, err := tx.ExecContext(ctx, mysqldb.MultiRow(bulkUsersPrefix, bulkUsersRow, hi-lo), userArgs[bulkUsersArgs*lo:bulkUsersArgs*hi]...)
			if err != nil {
				return err
			}
			if o.Audit {
				if _, err := tx.ExecContext(ctx, mysqldb.MultiRow(bulkAuditPrefix, bulkAuditRow, hi-lo), auditArgs[bulkAuditArgs*lo:bulkAuditArgs*hi]...); err != nil {
					return err
				}
			}
			if !o.Consecutive {
				continue
			}
			// A multi-row INSERT got consecutive values, in the order of its rows, starting at
			// LAST_INSERT_ID().
			first, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for i := lo; i < hi; i++ {
				p.Add(uint32(first)+uint32(i-lo), batch[i].User.Name, batch[i].User.Email.Display())
			}
		}
		if !o.Consecutive {
			seqs, err := q.GetUserSeqs(ctx, ids)
			if err != nil {
				return err
			}
			for _, r := range seqs {
				u := byID[r.ID]
				p.Add(r.Seq, u.Name, u.Email.Display())
			}
		}
		if err := search.WriteBulk(ctx, tx, p); err != nil {
			return err
		}
		return counts.Write(ctx, tx)
	})
}
