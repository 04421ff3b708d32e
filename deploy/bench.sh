#!/usr/bin/env bash
# `make bench`: a database of BENCH_USERS users (seeded once), the service on port 8089 with the
# rate limit out of the way, an API key, then `usersvc-bench bench`, which rewrites the table in
# docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${BENCH_USERS:-1000000}
server=${TEST_DATABASE_URL:-mysql://root@127.0.0.1:3306/}
export DATABASE_URL="${server%/}/usersvc_bench"
envfile=.env.bench
# A bench cut short leaves its scratch table (the raw insert baseline's), which migrate would refuse to drop.
mariadb --protocol=tcp -h127.0.0.1 -uroot -e "DROP TABLE IF EXISTS usersvc_bench.bench_raw_users, usersvc_bench.bench_raw_vault, usersvc_bench.bench_raw_audit, usersvc_bench.bench_raw_counts" 2>/dev/null || true
./bin/usersvc migrate >/dev/null
./bin/usersvc dev-init --env-file "$envfile"
set -a; . "./$envfile"; set +a
pool=$(mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e "SELECT @@innodb_buffer_pool_size")
if [ "$pool" -lt 2147483648 ]; then
  echo "warning: innodb_buffer_pool_size is $((pool >> 20)) MB: a million users' indexes do not fit, so the seed" \
       "and the numbers will be disk-bound. docs/performance.md's numbers used SET GLOBAL innodb_buffer_pool_size = 4294967296." >&2
fi
have=$(mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM usersvc_bench.users WHERE is_deleted = FALSE")
if [ "$have" -lt "$users" ]; then
  echo "seeding $((users - have)) users (the buffer pool should hold the working set: see docs/performance.md)"
  ./bin/usersvc-bench seed --count $((users - have))
fi
PPROF_ADDR=${PPROF_ADDR:-127.0.0.1:6060} RATE_LIMIT_PER_MINUTE=1000000 PORT=8089 SHUTDOWN_DELAY=0s ./bin/usersvc serve >/tmp/usersvc-bench.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8089/readyz >/dev/null && break; sleep 0.1; done
# A client key as most clients have it: no users:pii (with it every read is an audited write).
key=$(./bin/usersvc apikey create --name "bench-$(date +%s)" --scopes users:read,users:write,users:delete 2>/dev/null)
./bin/usersvc-bench bench --url http://127.0.0.1:8089 --key "$key" \
  --concurrency "${BENCH_CONCURRENCY:-16,4}" --duration "${BENCH_DURATION:-10s}" --out docs/performance.md
