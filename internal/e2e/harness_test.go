// Package e2e runs the real usersvc binary as a fleet of replicas, with real Redis (single node
// and a three-master Redis Cluster started here from redis-server) and a real nginx in front.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "usersvc-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "usersvc")
	build := exec.Command("go", "build", "-o", binary, "github.com/usersvc/usersvc/cmd/usersvc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build usersvc:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int { return testdb.FreePort(t) }

func dbURL(cfg *mysql.Config) string { return testdb.URL(cfg) }

// process runs a command until the test ends.
func process(t *testing.T, name string, cmd *exec.Cmd) *testdb.Output {
	return testdb.Process(t, name, cmd, 10*time.Second)
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// bearer is the Authorization value do sends; fleet sets it to a key with every scope.
var bearer string

// lastFleet holds the processes and database of the latest fleet, for tests that kill replicas
// and check the database directly.
var lastFleet struct {
	cmds []*exec.Cmd
	outs []*testdb.Output // each replica's log
	db   *mysql.Config
}

// fleet starts n replicas of the binary on one fresh database with the given environment, and
// creates an API key with every scope through the binary's own CLI.
func fleet(t *testing.T, n int, env map[string]string) []string {
	t.Helper()
	cfg := testdb.New(t, "fleet")
	create := exec.Command(binary, "apikey", "create", "--name", "e2e", "--scopes", strings.Join(auth.AllScopes, ","))
	create.Env = append(os.Environ(), "DATABASE_URL="+dbURL(cfg))
	var stderr bytes.Buffer
	create.Stderr = &stderr
	key, err := create.Output()
	if err != nil {
		t.Fatalf("apikey create: %v %s", err, stderr.String())
	}
	if lines := strings.Split(strings.TrimSpace(string(key)), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], auth.KeyPrefix) {
		t.Fatalf("apikey create printed more than the key on stdout: %q", key)
	}
	bearer = "Bearer " + strings.TrimSpace(string(key))
	encKeys, bidxKey := "e2e1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial() // shared by the replicas
	var bases []string
	lastFleet.cmds, lastFleet.outs, lastFleet.db = nil, nil, cfg
	for i := 0; i < n; i++ {
		port := freePort(t)
		cmd := exec.Command(binary, "serve")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL(cfg), fmt.Sprintf("PORT=%d", port),
			"LOG_HASH_SECRET=e2e-secret-e2e-secret-e2e-secret-e2e", "SHUTDOWN_DELAY=100ms", "PII_ENCRYPTION_KEYS="+encKeys, "BLIND_INDEX_KEY="+bidxKey)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out := process(t, fmt.Sprintf("replica %d", i), cmd)
		lastFleet.cmds, lastFleet.outs = append(lastFleet.cmds, cmd), append(lastFleet.outs, out)
		t.Cleanup(func() { checkLogs(t, out) }) // runs before the process is stopped: logs so far
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitHTTP(t, base+"/healthz")
		bases = append(bases, base)
	}
	return bases
}

// redisServer starts a redis-server on port with extra arguments.
func redisServer(t *testing.T, port int, dir string, args ...string) *exec.Cmd {
	t.Helper()
	all := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no"}, args...)
	cmd := exec.Command("redis-server", all...)
	process(t, fmt.Sprintf("redis %d", port), cmd)
	for i := 0; i < 100; i++ {
		if out, err := exec.Command("redis-cli", "-p", fmt.Sprint(port), "ping").Output(); err == nil && strings.TrimSpace(string(out)) == "PONG" {
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis on %d did not start", port)
	return nil
}

// redisCluster starts three masters in cluster mode and joins them; it returns their addresses.
func redisCluster(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for i := 0; i < 3; i++ {
		port := freePort(t)
		redisServer(t, port, dir, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
			"--cluster-node-timeout", "2000")
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for i := 0; i < 100; i++ {
		ok := true
		for _, a := range addrs {
			port := a[strings.LastIndexByte(a, ':')+1:]
			out, _ := exec.Command("redis-cli", "-p", port, "cluster", "info").Output()
			ok = ok && strings.Contains(string(out), "cluster_state:ok")
		}
		if ok {
			return addrs
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("redis cluster never reached cluster_state:ok")
	return nil
}

type result struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, client *http.Client, method, url, body string, headers ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{code: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// used records the personal values the fleet tests send; replica logs must hold none of them.
var used = struct {
	sync.Mutex
	values []string
}{}

// userJSON is a valid create body with random unique values, remembered for the log check.
func userJSON() string { return newUserJSON(true) }

// newUserJSON builds a create body; remember adds its values to the log check (the soak, which
// makes thousands, does not).
func newUserJSON(remember bool) string {
	tag := strings.ToLower(testdb.Letters(10))
	mobile, aadhaar, pan := testdb.Mobile(), testdb.Aadhaar(), testdb.PAN()
	if remember {
		used.Lock()
		used.values = append(used.values, "fleet."+tag+"@example.com", mobile, aadhaar, pan)
		used.Unlock()
	}
	return fmt.Sprintf(`{"name":"Fleet User %s","email":"fleet.%s@example.com","primary_mobile":"%s","aadhaar":"%s","pan":"%s",
		"date_of_birth":"1990-01-01","place_of_birth":"Pune","current_address":"1 Long Road, Pune 411001",
		"permanent_address":"1 Long Road, Pune 411001"}`, tag, tag, mobile, aadhaar, pan)
}

// checkLogs fails when a replica's log holds a personal value a test sent.
func checkLogs(t *testing.T, out *testdb.Output) {
	logs := out.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		return // the replica served nothing
	}
	used.Lock()
	defer used.Unlock()
	for _, v := range used.values {
		if strings.Contains(logs, v) {
			t.Errorf("a replica logged a personal value in plain text (%s...)", v[:3])
		}
	}
}
