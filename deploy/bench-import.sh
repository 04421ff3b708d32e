#!/usr/bin/env bash
# `make bench-import`: N generated valid users (usersvc-bench import-file, cached in
# /var/tmp) imported by `usersvc import` into a new, empty database; prints the rate.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
server=${TEST_DATABASE_URL:-mysql://root@127.0.0.1:3306/}
export DATABASE_URL="${server%/}/usersvc_import_bench"
file=/var/tmp/usersvc-import-$n.ndjson
[ -s "$file" ] || ./bin/usersvc-bench import-file --count "$n" --out "$file"
mariadb --protocol=tcp -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS usersvc_import_bench"
./bin/usersvc migrate >/dev/null
envfile=.env.bench
./bin/usersvc dev-init --env-file "$envfile" >/dev/null
set -a; . "./$envfile"; set +a
./bin/usersvc import --results /dev/null ${IMPORT_FLAGS:-} "$file"
