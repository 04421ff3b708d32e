package explain_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/explain"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

// allowed lists the statements that may scan or sort a whole table, and why.
var allowed = map[string]string{
	"CountLiveUsers":           "only `usersvc migrate` runs it, once, to fill the live counts",
	"FillUserDayCounts":        "only `usersvc migrate` runs it, once, to fill user_time_counts",
	"FillUserHourCounts":       "only `usersvc migrate` runs it, once, to fill user_time_counts",
	"FillUserMinuteCounts":     "only `usersvc migrate` runs it, once, to fill user_time_counts",
	"FillUserSecondCounts":     "only `usersvc migrate` runs it, once, to fill user_time_counts",
	"ListAPIKeys":              "api_keys has one row per client; `apikey list` is an admin command",
	"CountVaultEntriesToRekey": "key rotation is a batch job that visits every entry by design",
	"ListVaultEntriesToRekey":  "key rotation is a batch job that visits every entry by design",
}

// TestExplainEveryStatement loads enough users to make the optimiser honest and EXPLAINs every
// statement of queries/*.sql with representative arguments. A full table scan, or a filesort
// over more than a page's worth of rows, fails the test unless the statement is in allowed.
// EXPLAIN_PRINT=1 (`make explain`) prints every plan.
func TestExplainEveryStatement(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "explain")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 6, MaxIdle: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("e1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	if _, err := seed.Run(ctx, db, vault.New(keys, nil), seed.Options{Count: 20000, Workers: 4, Batch: 1000}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"UPDATE users SET is_deleted = TRUE, deleted_at = created_at WHERE id LIKE '%0'", // about 1 in 16 deleted
		"INSERT INTO user_audit (user_id, action, changed_fields, version, created_at) SELECT id, 'create', 'name', version, created_at FROM users",
		"UPDATE user_audit SET event_pending = TRUE WHERE id % 1000 = 0", // a relay's backlog
		"ANALYZE TABLE users, user_audit, pii_vault, search_segments, user_time_counts",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	var f struct {
		id, emailKey, mobile, aRef, pRef, version string
		created                                   time.Time
		seq                                       uint32
		bidx                                      []byte
	}
	if err := db.QueryRowContext(ctx, `SELECT u.id, u.email_key, u.primary_mobile, u.aadhaar_ref, u.pan_ref, u.version, u.created_at, u.seq, v.blind_index
		FROM users u JOIN pii_vault v ON v.ref = u.aadhaar_ref WHERE u.is_deleted = FALSE LIMIT 1`).
		Scan(&f.id, &f.emailKey, &f.mobile, &f.aRef, &f.pRef, &f.version, &f.created, &f.seq, &f.bidx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	key := make([]byte, 32)
	args := map[string][]any{
		"InsertAPIKey":                {"abcdefghijkm", "n", key, "users:read", now},
		"GetAPIKey":                   {"abcdefghijkm"},
		"ListAPIKeys":                 {},
		"RevokeAPIKey":                {now, "abcdefghijkm", "n"},
		"TouchAPIKey":                 {now, "abcdefghijkm", now},
		"InsertAudit":                 {f.id, "update", nil, nil, "name", f.version, now, true},
		"ListPendingEvents":           {500},
		"MarkEventsPublished":         {1},
		"CountPendingEvents":          {100000},
		"OldestPendingEvent":          {},
		"ReplayEvents":                {1, 10001},
		"LastAuditID":                 {},
		"CountAudit":                  {f.id},
		"ListAudit":                   {f.id, 10, 0},
		"CountLiveUsersMaintained":    {},
		"LockUserCounts":              {},
		"ClearUserCounts":             {},
		"CountTotalRows":              {},
		"SetLiveTotal":                {5},
		"AddLiveUsersAt":              {3, 1, 20000, 3, 1, 480000, 3, 1, 28800000, 3, 1, 1728000000, 3, 1, 1},
		"ListTimeCounts":              {1, 20000, 20064},
		"OldestCountedDay":            {},
		"LockUserTimeCounts":          {},
		"ClearUserTimeCounts":         {},
		"FillUserDayCounts":           {},
		"FillUserHourCounts":          {},
		"FillUserMinuteCounts":        {},
		"FillUserSecondCounts":        {},
		"CountUserTimeCountRows":      {},
		"ListLiveUserIDsBefore":       {f.created, 10, 1000},
		"InsertIdempotencyKey":        {key, key, f.id, "create", now, now},
		"SetIdempotencyKeyUser":       {f.id, key},
		"GetIdempotencyKey":           {key, now},
		"DeleteExpiredIdempotencyKey": {key, now},
		"PurgeExpiredIdempotencyKeys": {now},
		"InsertUser": {"00000000-0000-4000-8000-000000000001", "n", "e", "e@x.com", "9876543210", nil, now, "p", f.aRef, f.pRef,
			"2346", "8261K", "a", "a", now, now, nil, nil, f.version},
		"GetLiveUser":               {f.id},
		"GetUser":                   {f.id},
		"FindEmailHolders":          {f.emailKey},
		"FindMobileHolders":         {f.mobile},
		"ListVaultIndexesIn":        {"aadhaar", f.bidx},
		"GetLiveUserWithIDs":        {f.id},
		"GetUserState":              {f.id},
		"LockUser":                  {f.id},
		"FindUniqueHolders":         {f.emailKey, f.mobile, f.aRef, f.pRef},
		"UpdateUserProfile":         {"n", "e", f.emailKey, f.mobile, nil, "a", "a", true, now, nil, f.version, true, f.id, f.version},
		"ReviveUser":                {"n", "e", f.emailKey, f.mobile, nil, now, "p", f.aRef, f.pRef, "2346", "8261K", "a", "a", now, nil, f.version, f.id, f.version},
		"SoftDeleteUser":            {now, nil, now, nil, f.version, f.id, f.version},
		"RestoreUser":               {now, nil, f.version, f.id, f.version},
		"CountLiveUsers":            {},
		"ListLiveUserIDs":           {10, 5000},
		"ListLiveUserIDsAfter":      {f.created, f.id, 10, f.created, 10, 10},
		"GetUsersByIDs":             {f.id},
		"SearchSegments":            {[]byte("sha")},
		"SearchGramSizes":           {[]byte("sha")},
		"SearchGramSizesPrefix":     {[]byte("sh"), []byte("si")},
		"ListSearchPending":         {},
		"SearchVerifyUsers":         {f.seq},
		"GetUserSeqs":               {f.id},
		"ListUsersForIndex":         {f.seq, 4096},
		"CountSearchSegments":       {},
		"LockCompactSegments":       {uint64(1) << 32, []byte("sha")},
		"LockSearchDirty":           {1000},
		"ClearSearchDirty":          {f.seq},
		"LockLegacySearchPending":   {1000},
		"MarkSearchDirty":           {f.seq},
		"ListUsersMissingMasks":     {"", 500},
		"SetUserMasks":              {"2346", "8261K", f.id, f.aRef, f.pRef},
		"DeleteSearchPending":       {f.seq},
		"SearchSegmentKeysFor":      {[]byte("sha"), f.seq, uint64(1) << 32},
		"LockSearchSegmentsAt":      {[]byte("sha"), uint64(1) << 32},
		"ClearSearchSegments":       {},
		"SetSearchSegment":          {key, 1, []byte("sha"), uint64(1) << 32},
		"NeutraliseIdempotencyKeys": {key, f.id},
		"GetLiveUserByAadhaarRef":   {f.aRef},
		"GetLiveUserByPANRef":       {f.pRef},
		"EraseUser":                 {now, nil, now, "r", now, nil, f.version, f.id},
		"ListDeletedBefore":         {now.AddDate(0, 0, -30), 100},
		"GetVaultRefByIndex":        {"aadhaar", f.bidx},
		"InsertVaultEntryPair":      {"00000000-0000-4000-8000-000000000003", key, "e1", key, now, now, "00000000-0000-4000-8000-000000000004", key, "e1", key, now, now},
		"InsertVaultEntry":          {"00000000-0000-4000-8000-000000000002", "pan", key, "e1", key, now, now},
		"GetVaultEntries":           {f.aRef},
		"DeleteVaultEntries":        {f.aRef},
		"ListVaultEntriesToRekey":   {"e2", "", 500},
		"CountVaultEntriesToRekey":  {"e2"},
		"RekeyVaultEntry":           {"e2", key, now, f.aRef, "e1"},
	}
	statements, err := explain.Statements()
	if err != nil {
		t.Fatal(err)
	}
	if len(statements) < 40 {
		t.Fatalf("only %d statements parsed", len(statements))
	}
	print := os.Getenv("EXPLAIN_PRINT") != ""
	for _, st := range statements {
		a, ok := args[st.Name]
		if !ok {
			t.Errorf("%s (%s): add representative arguments to this test", st.Name, st.File)
			continue
		}
		plan, err := explain.Plan(ctx, db, st, a)
		if err != nil {
			t.Errorf("%s: %v", st.Name, err)
			continue
		}
		var bad []string
		for _, r := range plan {
			if print {
				t.Logf("%-28s %-12s type=%-6s key=%-28s rows=%-7d %s", st.Name, r.Table, r.Type, r.Key, r.Rows, r.Extra)
			}
			switch {
			case strings.EqualFold(r.Type, "ALL") && r.Rows > 1000:
				bad = append(bad, fmt.Sprintf("full scan of %s (%d rows)", r.Table, r.Rows))
			case strings.Contains(r.Extra, "filesort") && r.Rows > 1000:
				bad = append(bad, fmt.Sprintf("filesort over %d rows of %s", r.Rows, r.Table))
			}
		}
		if len(bad) > 0 {
			if reason, ok := allowed[st.Name]; ok {
				if print {
					t.Logf("%-28s allowed: %s", st.Name, reason)
				}
				continue
			}
			t.Errorf("%s (%s): %s", st.Name, st.File, strings.Join(bad, "; "))
		}
	}
}
