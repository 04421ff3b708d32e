package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeFile checks the file itself (the fleet runs for real in make containers-test): it
// parses (with its anchors and merge keys), names the fleet the README promises, the replicas trust
// the fleet network, and nginx, the only service on it that sends HTTP, overwrites
// X-Forwarded-For instead of appending to what a client sent.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Networks    any               `yaml:"networks"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	s := doc.Services
	if s["mysql"].Image != "mysql:8.0" || !strings.HasPrefix(s["redis"].Image, "redis:7") || strings.Join(s["migrate"].Command, " ") != "migrate" {
		t.Errorf("mysql/redis/migrate: %+v %+v %+v", s["mysql"], s["redis"], s["migrate"])
	}
	nginxNet := fmt.Sprint(s["nginx"].Networks)
	for i := 1; i <= 3; i++ {
		r := s[fmt.Sprintf("usersvc-%d", i)]
		if strings.Join(r.Command, " ") != "serve" || r.Environment["TRUSTED_PROXIES"] != "172.28.0.0/24" || r.Environment["APP_ENV"] != "production" {
			t.Errorf("replica %d: %+v", i, r)
		}
	}
	if nginxNet != "[fleet]" || len(s["nginx"].Ports) != 1 || s["nginx"].Ports[0] != "${USERSVC_PORT:-8000}:8000" {
		t.Errorf("nginx: %+v", s["nginx"])
	}
	conf, err := os.ReadFile("../../deploy/nginx/compose.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "proxy_set_header X-Forwarded-For $remote_addr;") || strings.Contains(string(conf), "$proxy_add_x_forwarded_for;") {
		t.Error("compose nginx must set X-Forwarded-For to its peer, not append to the client's")
	}
}

// TestComposeNginxConfig runs `nginx -t` on the compose nginx config. Compose's DNS names do
// not resolve here, so the upstreams are pointed at loopback first; everything else is tested
// as written.
func TestComposeNginxConfig(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed (.ci/run installs nginx-light)")
		}
		t.Skip("nginx is not installed: apt-get install nginx-light (CI never skips)")
	}
	raw, err := os.ReadFile("../../deploy/nginx/compose.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for i := 1; i <= 3; i++ {
		conf = strings.ReplaceAll(conf, fmt.Sprintf("usersvc-%d:8000", i), fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	conf = strings.Replace(conf, "listen 8000;", fmt.Sprintf("listen 127.0.0.1:%d;", freePort(t)), 1)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/nginx.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", dir+"/nginx.conf", "-g", "pid "+dir+"/nginx.pid;").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
