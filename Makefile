# usersvc: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/usersvc
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/usersvc/usersvc/internal/app.Version=$(VERSION) -X github.com/usersvc/usersvc/internal/app.Revision=$(REVISION)

# Safe local defaults: MariaDB/MySQL and Redis on localhost, root without a password.
export DATABASE_URL      ?= mysql://root@127.0.0.1:3306/usersvc
export TEST_DATABASE_URL ?= mysql://root@127.0.0.1:3306/
export TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0
# make run: /metrics and pprof on a private admin listener, not on the API port.
RUN_ADMIN_ADDR ?= 127.0.0.1:9090

# Tools are pinned in their own modules so that they never touch the service's dependencies.
SQLC     := $(GO) tool -modfile=tools/sqlc/go.mod sqlc
GOLANGCI := $(GO) tool -modfile=tools/lint/go.mod golangci-lint

.PHONY: run build migrate migrate-plan test lint generate check-generated readme-check cluster fuzz fuzz-http bench explain soak containers-test ci

## run: build, migrate the database declaratively, create local secrets and an API key
## (.env.local, git-ignored), serve the API on :8000 and /metrics + pprof on 127.0.0.1:9090
run: build
	./$(BIN) migrate
	./$(BIN) dev-init --env-file .env.local
	set -a && . ./.env.local && set +a && ADMIN_ADDR=$${ADMIN_ADDR:-$(RUN_ADMIN_ADDR)} exec ./$(BIN) serve

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/usersvc

migrate: build
	./$(BIN) migrate

migrate-plan: build
	./$(BIN) migrate --dry-run

## test: every test, integration tests included, against the real MariaDB/MySQL
test:
	$(GO) test -race -count=1 ./...

## containers-test: build the image, run the compose fleet under podman-compose and the core
## integration tests against a database container (podman, local stand-in images, no registry)
containers-test:
	deploy/containers/test.sh

## lint: gofmt, go vet and golangci-lint (pinned in tools/lint)
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI) run ./...

## generate: regenerate internal/sqlcgen from schema/ and queries/, and the typed client
## (client/client.gen.go) from the OpenAPI document
OAPI := $(GO) tool -modfile=tools/oapi/go.mod oapi-codegen
SPEC := internal/httpapi/apidocs/openapi.yaml
generate:
	$(SQLC) generate
	$(OAPI) -config client/oapi-codegen.yaml $(SPEC)

## check-generated: fail when generated code drifts from its SQL or the OpenAPI document, and run
## sqlc's vet rules
check-generated:
	$(SQLC) diff
	$(SQLC) vet
	tmp=$$(mktemp -d) && sed "s#^output:.*#output: $$tmp/client.gen.go#" client/oapi-codegen.yaml >$$tmp/cfg.yaml && \
	  $(OAPI) -config $$tmp/cfg.yaml $(SPEC) && \
	  { diff -u client/client.gen.go $$tmp/client.gen.go >/dev/null || { echo "client/client.gen.go drifted from $(SPEC): run make generate"; rm -rf $$tmp; exit 1; }; } && rm -rf $$tmp

## cluster: three replicas + nginx on 127.0.0.1:8080 (needs nginx: apt-get install nginx-light)
cluster: build
	deploy/cluster.sh

## fuzz: a short run of every fuzz target (FUZZTIME each, a duration or a count such as 50000x,
## which CI uses: go.dev/issue/75804; seed corpora in testdata/fuzz)
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseAadhaar$$' -fuzztime=$(FUZZTIME) ./internal/govid
	$(GO) test -run='^$$' -fuzz='^FuzzParsePAN$$' -fuzztime=$(FUZZTIME) ./internal/govid
	$(GO) test -run='^$$' -fuzz='^FuzzParseMobile$$' -fuzztime=$(FUZZTIME) ./internal/users
	$(GO) test -run='^$$' -fuzz='^FuzzParseEmail$$' -fuzztime=$(FUZZTIME) ./internal/users
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeCreate$$' -fuzztime=$(FUZZTIME) ./internal/httpapi

## soak: a mixed workload against the real binary for SOAK_DURATION (10m); fails on any 5xx or
## on RSS or goroutines growing without bound (make test runs the same for 15s)
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./internal/e2e

## explain: print the EXPLAIN plan of every statement in queries/ on 20,000 seeded users
explain:
	EXPLAIN_PRINT=1 $(GO) test -count=1 -v -run TestExplainEveryStatement ./internal/explain | grep -v '^=== '

## bench: seed 1,000,000 users once (BENCH_USERS), load-test every endpoint, rewrite the table in
## docs/performance.md (the tools are bin/usersvc-bench, not part of the service binary)
bench: build
	$(GO) build -o bin/usersvc-bench ./cmd/usersvc-bench
	deploy/bench.sh

## bench-import: `usersvc import` of IMPORT_USERS (1,000,000) generated valid users into a new,
## empty database (usersvc_import_bench, dropped first): the import's rate (docs/performance.md)
IMPORT_USERS ?= 1000000
bench-import: build
	$(GO) build -o bin/usersvc-bench ./cmd/usersvc-bench
	deploy/bench-import.sh $(IMPORT_USERS)

## readme-check: run the README's curl examples against a fresh database and the real binary
readme-check: build
	.ci/readme-examples

## ci: what .ci/run runs once the services are up
ci: check-generated lint test readme-check fuzz

## fuzz-http: a black-box mutation fuzzer against the real binary (FUZZ_HTTP_REQUESTS, 100,000 here;
## make test runs 10,000): fails on any 5xx, on personal data in the log, on memory growth
FUZZ_HTTP_REQUESTS ?= 100000
fuzz-http:
	set -o pipefail; FUZZ_HTTP_REQUESTS=$(FUZZ_HTTP_REQUESTS) $(GO) test -count=1 -v -timeout 0 -run '^TestFuzzHTTP$$' ./internal/e2e | { grep -v '^        {' || true; }
