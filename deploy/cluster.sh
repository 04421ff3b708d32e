#!/usr/bin/env bash
# `make cluster`: three usersvc replicas on 127.0.0.1:8001-8003 sharing MariaDB and Redis, and
# nginx on 127.0.0.1:8080 in front of them, all in the foreground until Ctrl-C.
# nginx reaches the replicas from 127.0.0.3, which is the only trusted proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || { echo "nginx is not installed: apt-get install nginx-light" >&2; exit 1; }
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
./bin/usersvc migrate
export TRUSTED_PROXIES=127.0.0.3/32
for port in 8001 8002 8003; do
  SHUTDOWN_DELAY=0s PORT=$port ./bin/usersvc serve >"$dir/replica-$port.log" 2>&1 &
  pids+=($!)
done
ups=""
for port in 8001 8002 8003; do ups+="    server 127.0.0.1:$port;"$'\n'; done
sed -e "s|{{DIR}}|$dir|g" -e "s|{{LISTEN}}|127.0.0.1:8080|" -e "s|{{BIND}}|127.0.0.3|" deploy/nginx.conf.tmpl |
  awk -v ups="$ups" '{ if ($0 ~ /^\{\{UPSTREAMS\}\}$/) printf "%s", ups; else print }' >"$dir/nginx.conf"
nginx -t -p "$dir" -c "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" &
pids+=($!)
echo "usersvc fleet: http://127.0.0.1:8080/api/v1/users/ (replica logs in $dir); Ctrl-C stops it"
wait
