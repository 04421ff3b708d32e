-- pii_vault: Aadhaar numbers and PANs, AES-256-GCM encrypted (see internal/vault). One row per
-- distinct value, found by its HMAC blind index; users hold only the random ref. This table may
-- live in a separate database (VAULT_DATABASE_URL), which `usersvc migrate` brings to this file.
CREATE TABLE pii_vault (
  ref         CHAR(36)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  kind        VARCHAR(8)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  blind_index BINARY(32)     NOT NULL,
  key_id      VARCHAR(32)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ciphertext  VARBINARY(255) NOT NULL,
  created_at  DATETIME(6)    NOT NULL,
  updated_at  DATETIME(6)    NOT NULL,
  PRIMARY KEY (ref),
  UNIQUE KEY uq_pii_vault_blind_index (kind, blind_index),
  -- Key rotation walks the entries not yet under the active key.
  KEY idx_pii_vault_key_id (key_id, ref)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
