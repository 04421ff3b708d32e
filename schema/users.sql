-- Desired state of the usersvc database. `usersvc migrate` diffs this file against the live
-- database with the Atlas engine and applies the difference; sqlc reads it to type the queries.
-- Every statement must stay valid on MySQL 8.0 and MariaDB 10.11.

-- users: one row per person. Rows are never hard-deleted by the API: a soft delete sets is_deleted.
-- The unique keys cover deleted rows too, because a soft-deleted user is recoverable and keeps its
-- identifiers (see README, "Uniqueness and soft delete").
CREATE TABLE users (
  id                CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name              VARCHAR(255) NOT NULL,
  -- email as the user typed it (shown back); email_key is the normalised form
  -- (lower-cased, IDNA-ASCII domain) that carries uniqueness and exact lookup.
  -- Erasure empties the personal columns and NULLs the unique ones (see erased_at).
  email             VARCHAR(254) NOT NULL,
  email_key         VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  -- 10-digit Indian national numbers (the E.164 form is +91 followed by these digits).
  primary_mobile    VARCHAR(15)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  secondary_mobile  VARCHAR(15)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  date_of_birth     DATE         NULL,
  place_of_birth    VARCHAR(255) NOT NULL,
  -- Aadhaar and PAN live encrypted in pii_vault; these are random references to them
  -- (not derivable from the numbers). NULL once erased.
  aadhaar_ref       CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  pan_ref           CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  -- The display forms every masked answer shows anyway, so that reads without users:pii need no
  -- vault: the Aadhaar's last four digits (what UIDAI allows to be shown) and the PAN's last five
  -- characters. NULL after erasure, and for rows written before these columns until the
  -- service's backfill (users.BackfillMasks) fills them from the vault.
  aadhaar_last4     CHAR(4)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  pan_last5         CHAR(5)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  current_address   TEXT         NOT NULL,
  permanent_address TEXT         NOT NULL,
  -- Audit fields. Times are UTC, written by the service (not by the server clock).
  created_at        DATETIME(6)  NOT NULL,
  updated_at        DATETIME(6)  NOT NULL,
  created_by        VARCHAR(64)  NULL,
  updated_by        VARCHAR(64)  NULL,
  -- Soft delete.
  is_deleted        BOOLEAN      NOT NULL DEFAULT FALSE,
  deleted_at        DATETIME(6)  NULL,
  deleted_by        VARCHAR(64)  NULL,
  -- Optimistic locking: a new UUID on every write, sent to clients as the ETag.
  version           CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- Status flags.
  is_active         BOOLEAN      NOT NULL DEFAULT TRUE,
  email_verified    BOOLEAN      NOT NULL DEFAULT FALSE,
  mobile_verified   BOOLEAN      NOT NULL DEFAULT FALSE,
  last_login_at     DATETIME(6)  NULL,
  -- Erasure tombstone: when and why the personal data was removed.
  erased_at         DATETIME(6)  NULL,
  erasure_reason    VARCHAR(255) NULL,
  -- Registration sequence: a small dense number per user, assigned by the server, that the
  -- search index (search_segments, search_pending) stores instead of the 36-byte id. Search
  -- results come newest-registered first in this order.
  seq               INT UNSIGNED NOT NULL AUTO_INCREMENT,
  -- TRUE while the user's name or email is not yet in the search index: set by the write that
  -- creates, renames or revives the user (no extra row), cleared by the compactor once indexed.
  -- Search verifies these users directly, so they are found at once.
  search_dirty      BOOLEAN      NOT NULL DEFAULT FALSE,
  PRIMARY KEY (id),
  UNIQUE KEY uq_users_seq (seq),
  UNIQUE KEY uq_users_email (email_key),
  UNIQUE KEY uq_users_primary_mobile (primary_mobile),
  UNIQUE KEY uq_users_aadhaar (aadhaar_ref),
  UNIQUE KEY uq_users_pan (pan_ref),
  -- List and search: live users, newest first, with id as the unique tie-breaker.
  KEY idx_users_live_created (is_deleted, created_at, id),
  -- Retention purge: soft-deleted users by deletion time, in that order (no filesort).
  KEY idx_users_deleted (is_deleted, deleted_at),
  -- The users not yet indexed for search (search_dirty = TRUE): a short range, as long as the
  -- compactor's lag.
  KEY idx_users_search_dirty (search_dirty, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- user_audit: one row per change to a user, written in the same transaction as the change.
-- It names the fields that changed, never their values: no personal data lives here.
CREATE TABLE user_audit (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id        CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  action         VARCHAR(32)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  actor          VARCHAR(64)   NULL,
  request_id     VARCHAR(128)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  -- Comma-separated column names, e.g. "name,email".
  changed_fields VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- The user's version after this change.
  version        CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at     DATETIME(6)   NOT NULL,
  -- The row is also the change event (internal/events): TRUE from the change's transaction until
  -- the event relay has published it to the Redis Stream, then FALSE. The only column ever updated
  -- in this table. Rows that are not changes (pii_read) are written FALSE, and so were the rows
  -- from before events existed (the default); `usersvc events replay` sets it again.
  event_pending  BOOLEAN       NOT NULL DEFAULT FALSE,
  PRIMARY KEY (id),
  KEY idx_user_audit_user (user_id, id),
  -- The relay's queue: the pending events in id order, a short range (as long as the relay's lag).
  KEY idx_user_audit_event_pending (event_pending, id),
  CONSTRAINT fk_user_audit_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- idempotency_keys: the durable half of idempotency. Redis holds the replayable response; this row
-- is written in the same transaction as the change it made, so that a retry whose Redis record is
-- missing (Redis lost it, or the replica crashed between the MySQL commit and the Redis write) is
-- recognised and never applied twice. key_hash is SHA-256 over (caller, method, route, key).
CREATE TABLE idempotency_keys (
  key_hash    BINARY(32)   NOT NULL,
  fingerprint BINARY(32)   NOT NULL,
  user_id     CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  action      VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  expires_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (key_hash),
  KEY idx_idempotency_keys_expires (expires_at),
  -- Erasure neutralises the rows of the erased user (NeutraliseIdempotencyKeys).
  KEY idx_idempotency_keys_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- api_keys: bearer keys for clients. The key itself is never stored: only the SHA-256 of its
-- random secret part (the secret has 256 bits of entropy, so a fast hash is enough).
CREATE TABLE api_keys (
  id           CHAR(12)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name         VARCHAR(100) NOT NULL,
  secret_hash  BINARY(32)   NOT NULL,
  -- Space-separated scopes, e.g. "users:read users:write".
  scopes       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at   DATETIME(6)  NOT NULL,
  last_used_at DATETIME(6)  NULL,
  revoked_at   DATETIME(6)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_api_keys_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- user_counts: LEGACY, kept for one release for rolling upgrades. The previous version kept the
-- number of live users here; this one keeps it as unit 0 of user_time_counts. Replicas of the
-- previous version still add their changes here during the upgrade, so the total is the sum of
-- both (CountLiveUsersMaintained); a recount (usersvc migrate, when counts are missing) empties it.
-- The next release folds it into unit 0 and drops it.
CREATE TABLE user_counts (
  slot TINYINT UNSIGNED NOT NULL,
  live BIGINT NOT NULL,
  PRIMARY KEY (slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The substring search index (internal/search). "Name or email contains q" is answered from
-- trigrams of the case- and accent-folded name and email, without scanning users.
-- search_segments holds, per trigram, compressed bitmaps (Roaring, portable format) of the seq of
-- every user whose name or email has that trigram. Erasure, and a change of name or email, take
-- the user's seq out of the postings of its old grams in the same transaction (search.Forget), so
-- that an old value cannot be rebuilt from the index; the compactor then adds the new grams.
-- Rows are never deleted (an emptied one keeps an empty bitmap) and every rewrite adds 1 to rev,
-- which lets replicas tell whether the postings they cache for a gram are current.
-- segment: below 2^32 it is the first seq of a bulk batch (seed, reindex); from 2^32 on it is
-- 2^32 + (seq >> 16), the compactor's bucket.
CREATE TABLE search_segments (
  gram    VARBINARY(16) NOT NULL,
  segment BIGINT UNSIGNED NOT NULL,
  seqs    MEDIUMBLOB NOT NULL,
  -- how many seqs the bitmap holds, so that a query finds its rarest grams without reading blobs
  n       INT UNSIGNED NOT NULL DEFAULT 0,
  -- how many times the row was rewritten (see above)
  rev     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (gram, segment)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- search_pending: LEGACY, kept for one release so that replicas of the previous version can run
-- during a rolling upgrade. That version queued created or changed users here; this one marks them
-- with users.search_dirty instead, and its compactor moves any rows found here onto that flag.
-- Search still reads it. The next release drops it (empty by then).
CREATE TABLE search_pending (
  seq INT UNSIGNED NOT NULL,
  PRIMARY KEY (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- user_time_counts: the number of live users (unit 0, bucket 0: the `total` of every list, without
-- counting a million rows) and live users per creation day, hour, minute and second (unit 1, 2, 3,
-- 4; bucket = whole days, hours, minutes or seconds since 1970-01-01 UTC), kept in the transaction
-- of every change that makes a user live or not by one five-row upsert. Writers pick one of 16
-- slots at random so that concurrent creates do not queue on one row; a count is the sum of its
-- slots. A page by number sums days
-- newest first to find the day that holds its first row, then that day's hours, that hour's
-- minutes and that minute's seconds, and walks the index only within that second: page 5,000
-- costs a few hundred count rows and one second's users instead of 100,000 index entries, even
-- inside a burst of registrations. `usersvc migrate` fills it when it is empty (or has no seconds).
CREATE TABLE user_time_counts (
  unit   TINYINT UNSIGNED NOT NULL,
  bucket INT UNSIGNED NOT NULL,
  slot   TINYINT UNSIGNED NOT NULL,
  live   BIGINT NOT NULL,
  PRIMARY KEY (unit, bucket, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
