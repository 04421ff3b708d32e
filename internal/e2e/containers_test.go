//go:build containers

// The compose fleet for real: `make containers-test` (deploy/containers/test.sh) builds the
// service image and the local stand-in images, then runs this file with -tags containers.

package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/testdb"
)

// composeFleet runs docker-compose.yml with the stand-in override under podman-compose, as
// project p, and takes it down (volumes too) when the test ends.
type composeFleet struct {
	t       *testing.T
	project string
	env     []string
}

func (f *composeFleet) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), f.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *composeFleet) must(name string, args ...string) string {
	f.t.Helper()
	out, err := f.run(name, args...)
	if err != nil {
		f.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (f *composeFleet) compose(args ...string) string {
	f.t.Helper()
	return f.must("podman-compose", append([]string{"-p", f.project, "-f", "docker-compose.yml", "-f", "deploy/containers/compose.standins.yml"}, args...)...)
}

func (f *composeFleet) container(service string) string { return f.project + "_" + service + "_1" }

// healthy waits until the container's HEALTHCHECK passes (podman runs it on request here: these
// machines have no systemd to schedule it).
func (f *composeFleet) healthy(service string) {
	f.t.Helper()
	var out string
	for i := 0; i < 360; i++ { // up to about 3 minutes: DNS in a new podman network can lag
		var err error
		if out, err = f.run("podman", "healthcheck", "run", f.container(service)); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.t.Fatalf("%s never became healthy: %s\n%s", service, out, f.logs(service))
}

func (f *composeFleet) logs(service string) string {
	out, _ := f.run("podman", "logs", "--tail", "20", f.container(service))
	return out
}

func secret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestComposeFleet brings up docker-compose.yml (MariaDB and Redis stand-ins, migrate, three
// replicas built from the Dockerfile, nginx) and drives the API through nginx: create, read,
// list, search, an idempotent create sent twice, one replica stopped while nginx keeps answering,
// and the rate limit held across the replicas. Then everything is taken down, and nothing of the
// project may be left: no container, network or volume.
func TestComposeFleet(t *testing.T) {
	port := freePort(t)
	f := &composeFleet{t: t, project: "usersvc-ct-" + strings.ToLower(testdb.Letters(6)), env: []string{
		"USERSVC_PORT=" + fmt.Sprint(port), "LOG_HASH_SECRET=" + secret(),
		"PII_ENCRYPTION_KEYS=k1:" + secret(), "BLIND_INDEX_KEY=" + secret(),
	}}
	if os.Getenv("CONTAINERS_CONF") == "" {
		abs, _ := filepath.Abs("../../deploy/containers/containers.conf")
		f.env = append(f.env, "CONTAINERS_CONF="+abs)
	}
	// podman-compose 1.0 ignores a network's ipam settings and never removes networks: the test
	// makes the fleet network with the compose file's subnet (the replicas trust it) and removes it.
	network := f.project + "_fleet"
	f.must("podman", "network", "create", "--subnet", "172.28.0.0/24", "--label", "io.podman.compose.project="+f.project, network)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []string{"migrate", "usersvc-1", "nginx"} {
				t.Logf("%s logs:\n%s", s, f.logs(s))
			}
		}
		if out, err := f.run("podman-compose", "-p", f.project, "-f", "docker-compose.yml", "-f", "deploy/containers/compose.standins.yml", "down", "-v"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		if out, err := f.run("podman", "network", "rm", network); err != nil {
			t.Errorf("network rm: %v\n%s", err, out)
		}
		for _, what := range [][]string{
			{"ps", "-a", "--filter", "name=" + f.project, "--format", "{{.Names}}"},
			{"network", "ls", "--filter", "name=" + f.project, "--format", "{{.Name}}"},
			{"volume", "ls", "--filter", "name=" + f.project, "--format", "{{.Name}}"},
		} {
			if out := strings.TrimSpace(f.must("podman", what...)); out != "" {
				t.Errorf("left behind after down (podman %s): %s", what[0], out)
			}
		}
	})

	// podman-compose 1.0 starts dependencies in order but does not wait for their conditions
	// (service_healthy, service_completed_successfully): the test waits for each, as compose would.
	start := time.Now()
	f.compose("up", "-d", "mysql", "redis")
	f.healthy("mysql")
	f.compose("up", "-d", "migrate")
	if code := strings.TrimSpace(f.must("podman", "wait", f.container("migrate"))); code != "0" {
		t.Fatalf("migrate exited %s:\n%s", code, f.logs("migrate"))
	}
	f.compose("up", "-d", "usersvc-1", "usersvc-2", "usersvc-3", "nginx")
	for _, s := range []string{"usersvc-1", "usersvc-2", "usersvc-3"} {
		f.healthy(s) // the image's HEALTHCHECK: /usersvc healthcheck
		if user := strings.TrimSpace(f.must("podman", "inspect", "--format", "{{.Config.User}}", f.container(s))); user != "65532:65532" {
			t.Errorf("%s runs as %q, want the non-root 65532:65532", s, user)
		}
	}
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, front+"/readyz")
	t.Logf("fleet up in %v", time.Since(start).Round(time.Second))

	// The key is made inside a replica's container, by its own binary. A try that fails is logged
	// and repeated a few times (a CI run once failed here without a message that survived).
	var out string
	for try := 1; ; try++ {
		var err error
		out, err = f.run("podman", "exec", f.container("usersvc-1"), "/usersvc", "apikey", "create",
			"--name", "ct", "--scopes", "users:read,users:write,users:delete")
		if err == nil {
			break
		}
		t.Logf("apikey create in usersvc-1, try %d: %v\n%s", try, err, out)
		if try == 5 {
			t.Fatalf("apikey create failed %d times", try)
		}
		time.Sleep(2 * time.Second)
	}
	for _, field := range strings.Fields(out) { // the key on stdout, a note on stderr
		if strings.HasPrefix(field, "usvc_") {
			bearer = "Bearer " + field
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, body string, headers ...string) result {
		t.Helper()
		return do(t, client, method, front+path, body, headers...)
	}

	body := userJSON()
	created := call("POST", "/api/v1/users/", body, "Idempotency-Key", "ct-create")
	if created.code != 201 {
		t.Fatalf("create through nginx: %d %s", created.code, created.body)
	}
	var u struct{ ID, Name string }
	if err := json.Unmarshal([]byte(created.body), &u); err != nil || u.ID == "" {
		t.Fatalf("create answer: %s", created.body)
	}
	again := call("POST", "/api/v1/users/", body, "Idempotency-Key", "ct-create")
	if again.code != 201 || again.body != created.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("idempotent create sent twice: %d %q %s", again.code, again.header.Get("Idempotent-Replayed"), again.body)
	}
	if r := call("GET", "/api/v1/users/"+u.ID, ""); r.code != 200 || !strings.Contains(r.body, u.ID) {
		t.Fatalf("read: %d %s", r.code, r.body)
	}
	var page struct{ Total int }
	if r := call("GET", "/api/v1/users/", ""); r.code != 200 || json.Unmarshal([]byte(r.body), &page) != nil || page.Total != 1 {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	word := strings.Fields(u.Name)[2] // "Fleet User <tag>"
	if r := call("GET", "/api/v1/users/search?q="+word, ""); r.code != 200 || !strings.Contains(r.body, u.ID) {
		t.Fatalf("search %q: %d %s", word, r.code, r.body)
	}

	// One replica stops: nginx keeps answering from the other two.
	f.must("podman", "stop", "-t", "5", f.container("usersvc-2"))
	for i := 0; i < 12; i++ {
		if r := call("GET", "/api/v1/users/"+u.ID, ""); r.code != 200 {
			t.Fatalf("request %d with usersvc-2 stopped: %d %s", i, r.code, r.body)
		}
	}
	f.must("podman", "start", f.container("usersvc-2"))
	f.healthy("usersvc-2")

	// The rate limit (100 per minute per client, the compose default) holds across the replicas:
	// one client's burst gets at most the budget, plus one token per 600 ms of the burst, plus the
	// leases' overshoot (3 replicas x a lease cap of 3, internal/ratelimit), whichever replica
	// nginx picks; the rest is 429.
	count := map[int]int{}
	burst := time.Now()
	for i := 0; i < 140; i++ {
		count[call("GET", "/api/v1/users/"+u.ID, "").code]++
	}
	bound := 100 + int(time.Since(burst)/(600*time.Millisecond)) + 3*3
	if count[429] == 0 || count[200] > bound || count[200]+count[429] != 140 {
		t.Fatalf("140 requests in a burst: %v; want at most %d OK and the rest 429", count, bound)
	}
	t.Logf("rate limit across replicas: %v", count)
}
