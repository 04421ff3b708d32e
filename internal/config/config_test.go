package config

import (
	"strings"
	"testing"
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

func TestProductionNeedsSecret(t *testing.T) {
	if _, err := Load(env(map[string]string{"APP_ENV": "production"})); err == nil || !strings.Contains(err.Error(), "LOG_HASH_SECRET") {
		t.Fatalf("got %v", err)
	}
}

func TestOriginsJSONList(t *testing.T) {
	c, err := Load(env(map[string]string{"ALLOWED_ORIGINS": `["https://a.example", "https://b.example/"]`}))
	if err != nil || len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" {
		t.Fatalf("%v %v", c.AllowedOrigins, err)
	}
}
