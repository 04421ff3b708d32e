package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/internal/app"
	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func dbURL(cfg *mysql.Config) string { return testdb.URL(cfg) }

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"usersvc", "--help"}, {"usersvc", "help"}, {"usersvc", "-h"}} {
		var out bytes.Buffer
		if err := app.Run(context.Background(), args, envOf(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"serve", "migrate", "version", "--dry-run", "--allow-destructive", "DATABASE_URL", "LOG_HASH_SECRET"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: help lacks %q", args, want)
			}
		}
	}
	var out bytes.Buffer
	if err := app.Run(context.Background(), []string{"usersvc", "version"}, envOf(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "usersvc ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	if err := app.Run(context.Background(), []string{"usersvc", "frobnicate"}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	err := app.Run(context.Background(), []string{"usersvc", "serve"},
		envOf(map[string]string{"PORT": "http", "DATABASE_URL": "mysql://u:topsecretpw@h/db", "MAX_PAGE_SIZE": "-3"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PORT") || !strings.Contains(err.Error(), "MAX_PAGE_SIZE") || strings.Contains(err.Error(), "topsecretpw") {
		t.Fatalf("got %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	srv, err := testdb.Server(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Clone()
	cfg.DBName = "usersvc_test_cli_migrate"
	testdb.Drop(cfg)
	t.Cleanup(func() { testdb.Drop(cfg) })
	env := envOf(map[string]string{"DATABASE_URL": dbURL(cfg)})

	var out bytes.Buffer
	if err := app.Run(context.Background(), []string{"usersvc", "migrate"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "CREATE TABLE `users`") || !strings.Contains(out.String(), "created database") {
		t.Errorf("first migrate printed: %s", out.String())
	}
	out.Reset()
	if err := app.Run(context.Background(), []string{"usersvc", "migrate", "--dry-run"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "schema is up to date" {
		t.Errorf("dry run after migrate printed %q", out.String())
	}
}

func freePort(t *testing.T) int { return testdb.FreePort(t) }

// TestShutdownDrainsInFlightRequests holds a row lock so that an update is in flight when the
// service is told to stop; the update must still complete with 200, and Run must return cleanly.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	cfg := testdb.New(t, "drain")
	port := freePort(t)
	logFile := t.TempDir() + "/usersvc.log"
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"usersvc", "serve"}, envOf(map[string]string{
			"DATABASE_URL": dbURL(cfg), "PORT": fmt.Sprint(port), "SHUTDOWN_TIMEOUT": "20s", "SHUTDOWN_DELAY": "1s",
			"LOG_FILE":            logFile,
			"PII_ENCRYPTION_KEYS": "t1:" + vault.NewKeyMaterial(), "BLIND_INDEX_KEY": vault.NewKeyMaterial(),
		}), io.Discard, io.Discard)
	}()
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("service did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := `{"name":"Drain Test","email":"drain@example.com","primary_mobile":"9876543210","aadhaar":"234123412346",
		"pan":"AAPPV8261K","date_of_birth":"1990-01-01","place_of_birth":"Pune","current_address":"1 Long Road, Pune 411001",
		"permanent_address":"1 Long Road, Pune 411001"}`
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, _, err := auth.Create(context.Background(), db, "drain", auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	post, _ := http.NewRequest("POST", base+"/api/v1/users/", strings.NewReader(body))
	post.Header.Set("Content-Type", "application/json")
	post.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(post)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", resp, err)
	}
	loc := resp.Header.Get("Location")
	resp.Body.Close()
	id := loc[strings.LastIndex(loc, "/")+1:]

	// Hold the user's row lock from outside.
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT id FROM users WHERE id = ? FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var status int
	var reqErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest("PUT", base+"/api/v1/users/"+id, strings.NewReader(`{"name":"Drained Name"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			reqErr = err
			return
		}
		defer resp.Body.Close()
		status = resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond) // the PUT is now waiting on the lock
	stop()                             // SIGTERM
	time.Sleep(200 * time.Millisecond)
	// First, readiness turns 503 while the replica still serves (SHUTDOWN_DELAY).
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Errorf("readyz during the delay: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("still serving during the delay: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	time.Sleep(1200 * time.Millisecond)
	// Then new connections are refused while the in-flight request drains.
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("new request accepted during shutdown: %d", resp.StatusCode)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if reqErr != nil || status != 200 {
		t.Fatalf("in-flight request: status %d, err %v", status, reqErr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	var name string
	if err := db.QueryRow("SELECT name FROM users WHERE id = ?", id).Scan(&name); err != nil || name != "Drained Name" {
		t.Fatalf("update lost: %q %v", name, err)
	}
	// LOG_FILE received the log.
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), `"msg":"request"`) || !strings.Contains(string(b), `"msg":"stopped"`) {
		t.Errorf("log file: %v %.200s", err, b)
	}
}

// TestTLS serves HTTPS with a certificate the test makes.
func TestTLS(t *testing.T) {
	cfg := testdb.New(t, "tls")
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	port := freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"usersvc", "serve"}, envOf(map[string]string{
			"DATABASE_URL": dbURL(cfg), "PORT": fmt.Sprint(port), "TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile, "SHUTDOWN_DELAY": "0s",
			"PII_ENCRYPTION_KEYS": "t1:" + vault.NewKeyMaterial(), "BLIND_INDEX_KEY": vault.NewKeyMaterial(),
		}), io.Discard, io.Discard)
	}()
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %v %v", resp, err)
	}
	resp.Body.Close()
	// The image's HEALTHCHECK command sees the server up, and a port with nothing on it down.
	hc := func(port int) error {
		return app.Run(context.Background(), []string{"usersvc", "healthcheck"},
			envOf(map[string]string{"PORT": fmt.Sprint(port), "TLS_CERT_FILE": certFile}), io.Discard, io.Discard)
	}
	if err := hc(port); err != nil {
		t.Errorf("healthcheck: %v", err)
	}
	if err := hc(freePort(t)); err == nil {
		t.Error("healthcheck of a closed port passed")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAdminListener: with ADMIN_ADDR, /metrics and pprof answer there and /metrics leaves the API
// port (anyone who reaches the API must not read the metrics).
func TestAdminListener(t *testing.T) {
	cfg := testdb.New(t, "admin")
	port, admin := freePort(t), freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"usersvc", "serve"}, envOf(map[string]string{
			"DATABASE_URL": dbURL(cfg), "PORT": fmt.Sprint(port), "ADMIN_ADDR": fmt.Sprintf("127.0.0.1:%d", admin), "SHUTDOWN_DELAY": "0s",
			"PII_ENCRYPTION_KEYS": "t1:" + vault.NewKeyMaterial(), "BLIND_INDEX_KEY": vault.NewKeyMaterial(),
		}), io.Discard, io.Discard)
	}()
	get := func(url string) int {
		for i := 0; i < 100; i++ {
			if resp, err := http.Get(url); err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			time.Sleep(50 * time.Millisecond)
		}
		return -1
	}
	if code := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)); code != 200 {
		t.Errorf("admin /metrics: %d", code)
	}
	if code := get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", admin)); code != 200 {
		t.Errorf("admin pprof: %d", code)
	}
	if code := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); code != 404 {
		t.Errorf("API port /metrics: %d, want 404", code)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
