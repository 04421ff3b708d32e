package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Kinds of vault entries.
const (
	KindAadhaar = "aadhaar"
	KindPAN     = "pan"
)

// Vault stores and reveals values. When it shares the users' database its statements join the
// caller's transaction, so a user and its vault entries commit or roll back together. With
// VAULT_DATABASE_URL it runs on its own database, outside that transaction (see docs/security.md).
type Vault struct {
	keys *Keyring
	db   *sql.DB // nil: shared database
	now  func() time.Time
}

// New returns a vault; separate is the vault's own database, or nil to share the caller's.
func New(keys *Keyring, separate *sql.DB) *Vault {
	return &Vault{keys: keys, db: separate, now: time.Now}
}

// Shared reports whether vault writes join the caller's transaction.
func (v *Vault) Shared() bool { return v.db == nil }

func (v *Vault) on(q *sqlcgen.Queries) *sqlcgen.Queries {
	if v.db == nil {
		return q
	}
	return sqlcgen.New(v.db)
}

// tracer names the spans around the vault (no-ops until tracing is set up, internal/tracing).
// They carry no attribute: never a value, a ref or a blind index.
var tracer = otel.Tracer("github.com/usersvc/usersvc/internal/vault")

func aad(kind, ref string) []byte { return []byte(kind + ":" + ref) }

// Store returns the ref of value, creating its encrypted entry when the value is new. One entry
// exists per distinct value (found by blind index); uniqueness across users is decided by the
// users table's unique key on the ref. It inserts first and looks up only on a duplicate, since
// most values are new (one round trip instead of two on the create path).
func (v *Vault) Store(ctx context.Context, q *sqlcgen.Queries, kind, value string) (string, error) {
	vq := v.on(q)
	e := v.Seal(kind, value)
	now := v.now().UTC()
	err := vq.InsertVaultEntry(ctx, sqlcgen.InsertVaultEntryParams{
		Ref: e.Ref, Kind: kind, BlindIndex: e.BlindIndex, KeyID: e.KeyID, Ciphertext: e.Ciphertext,
		CreatedAt: now, UpdatedAt: now,
	})
	var dup *mysqldb.DuplicateKeyError
	if errors.As(mysqldb.Translate(err), &dup) {
		// The value is already in the vault (another user holds it, or a revived user held it).
		return vq.GetVaultRefByIndex(ctx, sqlcgen.GetVaultRefByIndexParams{Kind: kind, BlindIndex: e.BlindIndex})
	}
	return e.Ref, err
}

// StorePair stores a person's Aadhaar and PAN and returns their refs: a new person's both
// entries in one statement, else (a value is already in the vault) one by one, as Store.
func (v *Vault) StorePair(ctx context.Context, q *sqlcgen.Queries, aadhaar, pan string) (aRef, pRef string, err error) {
	ctx, span := tracer.Start(ctx, "vault.store_pair")
	defer span.End()
	a, p := v.Seal(KindAadhaar, aadhaar), v.Seal(KindPAN, pan)
	err = v.on(q).InsertVaultEntryPair(ctx, sqlcgen.InsertVaultEntryPairParams{
		ARef: a.Ref, ABlindIndex: a.BlindIndex, AKeyID: a.KeyID, ACiphertext: a.Ciphertext,
		PRef: p.Ref, PBlindIndex: p.BlindIndex, PKeyID: p.KeyID, PCiphertext: p.Ciphertext,
		Now: v.now().UTC(),
	})
	var dup *mysqldb.DuplicateKeyError
	if !errors.As(mysqldb.Translate(err), &dup) {
		return a.Ref, p.Ref, err
	}
	// The refused statement wrote nothing (InnoDB rolls back the statement, not the transaction).
	if aRef, err = v.Store(ctx, q, KindAadhaar, aadhaar); err != nil {
		return "", "", err
	}
	pRef, err = v.Store(ctx, q, KindPAN, pan)
	return aRef, pRef, err
}

// Find returns the ref of value, or "" when the vault does not hold it.
func (v *Vault) Find(ctx context.Context, q *sqlcgen.Queries, kind, value string) (string, error) {
	ctx, span := tracer.Start(ctx, "vault.find")
	defer span.End()
	ref, err := v.on(q).GetVaultRefByIndex(ctx, sqlcgen.GetVaultRefByIndexParams{Kind: kind, BlindIndex: v.keys.BlindIndex(kind, value)})
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return ref, err
}

// Reveal decrypts the entries of refs ("" refs are skipped) and returns them by ref.
func (v *Vault) Reveal(ctx context.Context, q *sqlcgen.Queries, refs ...string) (map[string]string, error) {
	ctx, span := tracer.Start(ctx, "vault.reveal")
	defer span.End()
	var want []string
	for _, r := range refs {
		if r != "" {
			want = append(want, r)
		}
	}
	out := make(map[string]string, len(want))
	if len(want) == 0 {
		return out, nil
	}
	rows, err := v.on(q).GetVaultEntries(ctx, want)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		pt, err := v.keys.Decrypt(r.Ciphertext, aad(r.Kind, r.Ref))
		if err != nil {
			return nil, fmt.Errorf("vault entry %s: %w", r.Ref, err)
		}
		out[r.Ref] = string(pt)
	}
	return out, nil
}

// Delete removes entries for good ("" refs are skipped).
func (v *Vault) Delete(ctx context.Context, q *sqlcgen.Queries, refs ...string) error {
	ctx, span := tracer.Start(ctx, "vault.delete")
	defer span.End()
	var del []string
	for _, r := range refs {
		if r != "" {
			del = append(del, r)
		}
	}
	if len(del) == 0 {
		return nil
	}
	_, err := v.on(q).DeleteVaultEntries(ctx, del)
	return err
}

// RotateProgress reports a rotation batch.
type RotateProgress struct {
	Done, Remaining int64
}

// Rotate re-encrypts every entry that is not under the active key, batch by batch, each batch
// in its own short transaction. It is resumable: it always starts from what is left. Entries
// whose key is not configured are reported and skipped.
func Rotate(ctx context.Context, db *sql.DB, keys *Keyring, batch int, progress func(RotateProgress)) (done int64, err error) {
	active := keys.ActiveKeyID()
	q := sqlcgen.New(db)
	after := ""
	var undecryptable int64
	for {
		rows, err := q.ListVaultEntriesToRekey(ctx, sqlcgen.ListVaultEntriesToRekeyParams{ActiveKey: active, AfterRef: after, Limit: int32(batch)})
		if err != nil {
			return done, err
		}
		if len(rows) == 0 {
			break
		}
		var batchDone, batchBad int64
		err = mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, tq *sqlcgen.Queries) error {
			batchDone, batchBad = 0, 0 // the unit may rerun
			for _, r := range rows {
				pt, derr := keys.Decrypt(r.Ciphertext, aad(r.Kind, r.Ref))
				if derr != nil {
					batchBad++
					continue
				}
				n, err := tq.RekeyVaultEntry(ctx, sqlcgen.RekeyVaultEntryParams{
					KeyID: active, Ciphertext: keys.Encrypt(pt, aad(r.Kind, r.Ref)), UpdatedAt: time.Now().UTC(),
					Ref: r.Ref, OldKeyID: r.KeyID,
				})
				if err != nil {
					return err
				}
				batchDone += n
			}
			return nil
		})
		if err != nil {
			return done, err
		}
		done += batchDone
		undecryptable += batchBad
		after = rows[len(rows)-1].Ref
		remaining, err := q.CountVaultEntriesToRekey(ctx, active)
		if err != nil {
			return done, err
		}
		if progress != nil {
			progress(RotateProgress{Done: done, Remaining: remaining})
		}
	}
	if undecryptable > 0 {
		return done, fmt.Errorf("%d entries are under keys that are not configured; add those keys to PII_ENCRYPTION_KEYS and run again", undecryptable)
	}
	return done, nil
}

// bulkInsert is InsertVaultEntry (queries/vault.sql) as a multi-row INSERT (mysqldb.MultiRow:
// sqlc cannot express a variable number of VALUES rows); 7 placeholders a row.
const (
	bulkInsertPrefix = "INSERT INTO pii_vault (ref, kind, blind_index, key_id, ciphertext, created_at, updated_at) VALUES "
	bulkInsertRow    = "(?, ?, ?, ?, ?, ?, ?)"
	bulkPerStatement = 8000
)

// InsertMany writes sealed entries (bulk creation: the import and the seed), in tx when the vault
// is shared, else in the vault's own database. A value already held fails the statement with the
// database's duplicate-key error.
func (v *Vault) InsertMany(ctx context.Context, tx sqlcgen.DBTX, sealed []Sealed) error {
	ctx, span := tracer.Start(ctx, "vault.insert_many")
	defer span.End()
	var db sqlcgen.DBTX = v.db
	if v.db == nil {
		db = tx
	}
	now := v.now().UTC()
	for lo := 0; lo < len(sealed); lo += bulkPerStatement {
		hi := min(lo+bulkPerStatement, len(sealed))
		args := make([]any, 0, 7*(hi-lo))
		for _, e := range sealed[lo:hi] {
			args = append(args, e.Ref, e.Kind, e.BlindIndex, e.KeyID, e.Ciphertext, now, now)
		}
		if _, err := db.ExecContext(ctx, mysqldb.MultiRow(bulkInsertPrefix, bulkInsertRow, hi-lo), args...); err != nil {
			return err
		}
	}
	return nil
}

// Taken returns which of the values of one kind the vault holds already (by blind index): a
// value held belongs to a user, live or soft-deleted.
func (v *Vault) Taken(ctx context.Context, q *sqlcgen.Queries, kind string, values []string) (map[string]bool, error) {
	ctx, span := tracer.Start(ctx, "vault.taken")
	defer span.End()
	byIndex := make(map[string]string, len(values))
	idx := make([][]byte, len(values))
	for i, val := range values {
		idx[i] = v.keys.BlindIndex(kind, val)
		byIndex[string(idx[i])] = val
	}
	taken := map[string]bool{}
	if len(values) == 0 {
		return taken, nil
	}
	held, err := v.on(q).ListVaultIndexesIn(ctx, sqlcgen.ListVaultIndexesInParams{Kind: kind, BlindIndexes: idx})
	for _, h := range held {
		taken[byIndex[string(h)]] = true
	}
	return taken, err
}

// Sealed is a vault entry ready to be written: for bulk creation (InsertMany).
type Sealed struct {
	Ref, Kind, KeyID       string
	BlindIndex, Ciphertext []byte
}

// Seal encrypts value under a new ref, without writing it. Refs are UUIDv7: random in 74 bits
// (never derivable from the value) and time-ordered, so new entries append to the primary key
// instead of splitting pages all over it.
func (v *Vault) Seal(kind, value string) Sealed {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	ref := id.String()
	return Sealed{Ref: ref, Kind: kind, KeyID: v.keys.ActiveKeyID(), BlindIndex: v.keys.BlindIndex(kind, value),
		Ciphertext: v.keys.Encrypt([]byte(value), aad(kind, ref))}
}

// Open decrypts one entry read by the caller (a join that fetched the ciphertext with its row).
func (v *Vault) Open(kind, ref string, ciphertext []byte) (string, error) {
	pt, err := v.keys.Decrypt(ciphertext, aad(kind, ref))
	if err != nil {
		return "", fmt.Errorf("vault entry %s: %w", ref, err)
	}
	return string(pt), nil
}
