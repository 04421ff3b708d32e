package config

import (
	"strings"
	"testing"

	"github.com/usersvc/usersvc/internal/vault"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8000 || c.DB.DBName != "usersvc" || c.DefaultPageSize != 10 || c.MaxPageSize != 100 ||
		!c.LogHashSecretGenerated || len(c.AllowedOrigins) != 2 || c.DBMaxOpenConns != 50 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestErrorsNameVariablesAndHideSecrets(t *testing.T) {
	_, err := Load(env(map[string]string{
		"PORT": "eighty", "DATABASE_URL": "postgres://u:hunter2hunter2@h/db", "MAX_PAGE_SIZE": "0",
		"LOG_HASH_SECRET": "short-secret-value", "ALLOWED_ORIGINS": "not an origin", "REQUEST_TIMEOUT": "soon",
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, name := range []string{"PORT", "DATABASE_URL", "MAX_PAGE_SIZE", "LOG_HASH_SECRET", "ALLOWED_ORIGINS", "REQUEST_TIMEOUT"} {
		if !strings.Contains(msg, name) {
			t.Errorf("error does not name %s: %s", name, msg)
		}
	}
	for _, secret := range []string{"hunter2", "short-secret-value"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error leaks a secret: %s", msg)
		}
	}
}

func TestProductionNeedsSecrets(t *testing.T) {
	_, err := Load(env(map[string]string{"APP_ENV": "production"}))
	if err == nil || !strings.Contains(err.Error(), "LOG_HASH_SECRET") || !strings.Contains(err.Error(), "PII_ENCRYPTION_KEYS") {
		t.Fatalf("got %v", err)
	}
	_, err = Load(env(map[string]string{"APP_ENV": "production", "LOG_HASH_SECRET": strings.Repeat("s", 32),
		"PII_ENCRYPTION_KEYS": "k1:" + vault.NewKeyMaterial(), "BLIND_INDEX_KEY": vault.NewKeyMaterial()}))
	if err != nil {
		t.Fatalf("real secrets refused: %v", err)
	}
	_, err = Load(env(map[string]string{"PII_ENCRYPTION_KEYS": "k1:bm90IDMyIGJ5dGVz", "BLIND_INDEX_KEY": vault.NewKeyMaterial()}))
	if err == nil || strings.Contains(err.Error(), "bm90IDMyIGJ5dGVz") {
		t.Fatalf("short key: %v", err)
	}
}

func TestOriginsJSONList(t *testing.T) {
	c, err := Load(env(map[string]string{"ALLOWED_ORIGINS": `["https://a.example", "https://b.example/"]`}))
	if err != nil || len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" {
		t.Fatalf("%v %v", c.AllowedOrigins, err)
	}
}
