#!/usr/bin/env bash
# `make containers-test`: the containers for real, under podman, with no registry (docs/testing.md).
#  1. installs podman, podman-compose, runc and debootstrap if missing (Debian packages);
#  2. builds, once per machine, a Debian base image (debootstrap) and from it the test STAND-INS
#     (MariaDB 10.11 for mysql:8.0, Redis 7, nginx) and a Go builder image (the host's Go);
#     each is rebuilt only when its recipe changes;
#  3. builds the service image from the Dockerfile (always: it is the code under test);
#  4. runs the compose fleet test (TestComposeFleet, -tags containers);
#  5. runs the core integration tests against a database container started by testcontainers-go
#     through podman's Docker-compatible socket.
# Podman reads deploy/containers/containers.conf (CONTAINERS_CONF); the machine's /etc is untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF="$PWD/deploy/containers/containers.conf"
log() { printf '[containers] %s\n' "$*"; }
start=$(date +%s)

missing=()
for tool in podman podman-compose runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

base=localhost/debian:bookworm
if ! podman image exists "$base"; then
  log "building $base with debootstrap (about a minute, once per machine)"
  root=$(mktemp -d /var/tmp/usersvc-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  tar -C "$root" -c . | podman import -q - "$base" >/dev/null
  rm -rf "$root"
fi

# build_once IMAGE CONTAINERFILE CONTEXT: builds IMAGE unless it exists with the same recipe.
build_once() {
  local recipe
  recipe=$(cat "$2" deploy/containers/standins/*.sh | sha256sum | cut -c1-16)
  if [ "$(podman image inspect --format '{{index .Labels "usersvc.recipe"}}' "$1" 2>/dev/null)" != "$recipe" ]; then
    log "building $1"
    podman build -q --label "usersvc.recipe=$recipe" -t "$1" -f "$2" "$3" >/dev/null
  fi
}
standins=deploy/containers/standins
build_once localhost/usersvc-standin-mariadb:10.11 "$standins/mariadb.Containerfile" "$standins"
build_once localhost/usersvc-standin-redis:7 "$standins/redis.Containerfile" "$standins"
build_once localhost/usersvc-standin-nginx:1 "$standins/nginx.Containerfile" "$standins"
builder=localhost/usersvc-go-builder:$(go env GOVERSION)
build_once "$builder" "$standins/go-builder.Containerfile" "$(go env GOROOT)"

# Dangling images made by this run (the Dockerfile's build stage) are removed at the end; any that
# were on the machine before are left alone.
dangling_before=$(podman images -q --filter dangling=true | sort)
log "building localhost/usersvc:local from the Dockerfile"
go mod download # fills the module cache that the build mounts (it may not exist yet on a fresh machine)
# The module cache and the host's CA certificates (the module proxy may sit behind a TLS proxy
# the host trusts) are mounted into the build, not copied into the image.
podman build -q --format docker -t localhost/usersvc:local \
  --build-arg BUILDER_IMAGE="$builder" --build-arg RUNTIME_IMAGE="$base" \
  --build-arg VERSION=containers-test --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -v "$(go env GOMODCACHE):/go/pkg/mod" -v /etc/ssl/certs:/etc/ssl/certs:ro . >/dev/null
log "images ready after $(( $(date +%s) - start )) s"

sockdir=$(mktemp -d)
podman system service --time=0 "unix://$sockdir/podman.sock" >"$sockdir/service.log" 2>&1 &
service=$!
cleanup() {
  kill "$service" 2>/dev/null || true
  ids=$(podman ps -aq --filter label=usersvc.test=database)
  [ -z "$ids" ] || podman rm -f -v $ids >/dev/null
  new=$(comm -13 <(echo "$dangling_before") <(podman images -q --filter dangling=true | sort))
  [ -z "$new" ] || podman rmi -f $new >/dev/null 2>&1 || true
  rm -rf "$sockdir"
}
trap cleanup EXIT
for _ in $(seq 1 50); do [ -S "$sockdir/podman.sock" ] && break; sleep 0.1; done

export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
log "compose fleet: docker-compose.yml + deploy/containers/compose.standins.yml under podman-compose"
# The whole verbose output (with the containers' logs on failure) when it fails, a summary otherwise.
if ! go test -tags containers -count=1 -run 'TestComposeFleet' -v ./internal/e2e/ >"$sockdir/fleet.log" 2>&1; then
  cat "$sockdir/fleet.log"
  # The failure itself again, last, where a truncated CI summary still shows it (the containers'
  # logs printed in between can be long).
  echo "=== TestComposeFleet failed; its own messages (containers' logs left out):"
  awk '/containers_test.go:[0-9]+: [a-z0-9-]+ logs:$/ {skip=1; next} /containers_test.go:[0-9]+:/ {skip=0} /^(---|FAIL|ok)/ {skip=0} !skip' "$sockdir/fleet.log" | grep -v '^=== RUN' | tail -40
  exit 1
fi
grep -E '^(---|ok)|containers_test.go' "$sockdir/fleet.log"

log "integration tests against a database container (testcontainers-go, podman socket)"
env -u TEST_DATABASE_URL DOCKER_HOST="unix://$sockdir/podman.sock" TESTCONTAINERS_RYUK_DISABLED=true \
  TEST_MYSQL_IMAGE=localhost/usersvc-standin-mariadb:10.11 \
  go test -count=1 ./internal/httpapi/ ./internal/users/
log "ok after $(( $(date +%s) - start )) s"
