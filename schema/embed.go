// Package schema embeds the desired database schema (schema/*.sql) so that the binary can
// migrate a database without the source tree.
package schema

import "embed"

// Files holds every *.sql file of this folder, applied in lexical order.
//
//go:embed *.sql
var Files embed.FS

// VaultFiles holds only the vault's schema, for a vault kept in its own database
// (VAULT_DATABASE_URL).
//
//go:embed vault.sql
var VaultFiles embed.FS
