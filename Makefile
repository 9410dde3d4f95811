# Shop: the commands a developer needs. Each target's recipe is also the
# make-free way to do the same (see README).

MODULES  := platform contract orders payments gateway devstack loadgen shopctl
PACKAGES := $(foreach m,$(MODULES),./services/$(m)/...)

# Spectral, the OpenAPI linter, pinned and installed from npm into the cache.
SPECTRAL_VERSION := 6.16.3
SPECTRAL_DIR     := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shop/spectral-$(SPECTRAL_VERSION)
SPECTRAL         := $(SPECTRAL_DIR)/node_modules/.bin/spectral

# Integration tests use these; point them elsewhere in the environment.
export TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/shop_test?sslmode=disable
export TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15

.PHONY: run test jaeger test-deploy test-client cover lint lint-openapi spectral tidy build docs-ui help bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run the whole shop in one process (embedded SQLite and Redis)
	go run ./services/devstack $(ARGS)

build: ## build the binaries into bin/
	@mkdir -p bin
	for s in gateway orders payments devstack loadgen shopctl; do CGO_ENABLED=0 go build -trimpath -o bin/$$s ./services/$$s || exit 1; done

# A package's tests get 5 minutes, the end-to-end ones (real processes under
# load) 20: a test that runs away fails in minutes at most, never by growing
# until memory runs out.
test: ## run every test (PostgreSQL and Redis from TEST_DATABASE_URL and TEST_REDIS_URL)
	$(MAKE) jaeger || [ "$$CI" != true ]
	go test -race -count=1 -timeout 5m $$(go list $(PACKAGES) | grep -v '/e2e$$')
	go test -race -count=1 -timeout 20m $$(go list $(PACKAGES) | grep '/e2e$$')
	$(MAKE) test-deploy
	$(MAKE) test-client
	$(MAKE) test-kube

jaeger: ## build the Jaeger the tests run (services/tools, outside go.work) into ~/.cache/shop
	@cd services/tools && bin="$${XDG_CACHE_HOME:-$$HOME/.cache}/shop/jaeger-$$(awk '$$1 == "github.com/jaegertracing/jaeger" {print $$2}' go.mod)-$$(sha256sum go.sum | cut -c1-12)" && \
	{ test -x "$$bin" || { mkdir -p "$${bin%/*}" && GOWORK=off go build -o "$$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger && mv "$$bin.tmp" "$$bin"; }; } && echo "$$bin"

test-deploy: ## render and check the Helm chart, kustomize and Tiltfile (own module, outside go.work)
	cd services/deploytest && GOWORK=off go test -count=1 -timeout 10m ./...

test-client: ## drive the shop through a client generated from its spec with oapi-codegen (own module, outside go.work)
	cd services/clienttest && GOWORK=off go test -count=1 -timeout 10m ./...

.PHONY: kube-bins test-kube

kube-bins: ## build the etcd, kube-apiserver and kube-controller-manager the tests run into ~/.cache/shop (minutes, once per version)
	cd services/kubeapitest && GOWORK=off go run ./cmd/kube-bins

test-kube: kube-bins ## apply the chart and kustomize to a real kube-apiserver with Pod Security "restricted" (own module, outside go.work)
	cd services/kubeapitest && GOWORK=off go test -count=1 -timeout 20m ./...

cover: ## coverage per module, as a summary and coverage/<module>.html
	@mkdir -p coverage
	@for m in $(MODULES); do \
		go test -count=1 -coverprofile=coverage/$$m.out -coverpkg=./services/$$m/... ./services/$$m/... >/dev/null || exit 1; \
		go tool cover -html=coverage/$$m.out -o coverage/$$m.html; \
		printf '%-10s %s\n' $$m "$$(go tool cover -func=coverage/$$m.out | tail -n 1 | awk '{print $$NF}')"; \
	done

lint: ## go vet, gofmt and go mod tidy checks
	go vet $(PACKAGES)
	@test -z "$$(gofmt -l services)" || { gofmt -l services; echo 'gofmt: the files above need formatting'; exit 1; }
	@for m in $(MODULES); do (cd services/$$m && go mod tidy -diff) || { echo "go mod tidy: services/$$m is not tidy"; exit 1; }; done
	cd services/deploytest && GOWORK=off go vet ./... && GOWORK=off go mod tidy -diff
	cd services/clienttest && GOWORK=off go vet ./... && GOWORK=off go mod tidy -diff
	cd services/kubeapitest && GOWORK=off go vet ./... && GOWORK=off go mod tidy -diff
	$(MAKE) lint-openapi

spectral: ## install the pinned Spectral CLI from npm into ~/.cache/shop (needs npm)
	@test -x $(SPECTRAL) || npm install --silent --no-audit --no-fund --prefix $(SPECTRAL_DIR) @stoplight/spectral-cli@$(SPECTRAL_VERSION)

lint-openapi: ## Spectral (.spectral.yaml: spectral:oas) over the gateway's and each service's OpenAPI 3.1 and 3.0; any finding fails
	@if ! test -x $(SPECTRAL) && ! command -v npm >/dev/null; then \
		if [ "$$CI" = true ]; then echo 'lint-openapi: npm is missing (CI=true)'; exit 1; fi; \
		echo 'lint-openapi: skipped, npm is missing (install Node.js and npm to lint the OpenAPI descriptions)'; exit 0; \
	fi; $(MAKE) -s spectral && \
	dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	{ go run ./services/devstack -openapi-dir "$$dir/specs" >"$$dir/devstack.log" 2>&1 || { cat "$$dir/devstack.log"; exit 1; }; } && \
	echo "spectral $(SPECTRAL_VERSION):" $$(cd "$$dir/specs" && ls) && \
	$(SPECTRAL) lint --ruleset .spectral.yaml --fail-severity=hint "$$dir"/specs/*.json

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd services/$$m && go mod tidy) || exit 1; done
	cd services/deploytest && GOWORK=off go mod tidy
	cd services/clienttest && GOWORK=off go mod tidy
	cd services/kubeapitest && GOWORK=off go mod tidy

docs-ui: ## refresh the embedded Swagger UI from npm (VERSION=x.y.z to pick one)
	sh services/platform/docsui/update.sh $(VERSION)

bench: ## load the shop on PostgreSQL and Redis and compare with pgbench (BENCH_DATABASE_URL, BENCH_REDIS_URL)
	go run ./services/loadgen/cmd/bench
