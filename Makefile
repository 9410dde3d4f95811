# Shop: the commands a developer needs. Each target's recipe is also the
# make-free way to do the same (see README).

MODULES  := platform orders payments gateway devstack loadgen
PACKAGES := $(foreach m,$(MODULES),./services/$(m)/...)

# Integration tests use these; point them elsewhere in the environment.
export TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/shop_test?sslmode=disable
export TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15

.PHONY: run test jaeger test-deploy cover lint tidy build docs-ui help bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run the whole shop in one process (embedded SQLite and Redis)
	go run ./services/devstack $(ARGS)

build: ## build the binaries into bin/
	@mkdir -p bin
	for s in gateway orders payments devstack loadgen; do CGO_ENABLED=0 go build -trimpath -o bin/$$s ./services/$$s || exit 1; done

test: ## run every test (PostgreSQL and Redis from TEST_DATABASE_URL and TEST_REDIS_URL)
	$(MAKE) jaeger || [ "$$CI" != true ]
	go test -race -count=1 -timeout 20m $(PACKAGES)
	$(MAKE) test-deploy
	$(MAKE) test-kube

jaeger: ## build the Jaeger the tests run (services/tools, outside go.work) into ~/.cache/shop
	@cd services/tools && bin="$${XDG_CACHE_HOME:-$$HOME/.cache}/shop/jaeger-$$(awk '$$1 == "github.com/jaegertracing/jaeger" {print $$2}' go.mod)-$$(sha256sum go.sum | cut -c1-12)" && \
	{ test -x "$$bin" || { mkdir -p "$${bin%/*}" && GOWORK=off go build -o "$$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger && mv "$$bin.tmp" "$$bin"; }; } && echo "$$bin"

test-deploy: ## render and check the Helm chart, kustomize and Tiltfile (own module, outside go.work)
	cd services/deploytest && GOWORK=off go test -count=1 -timeout 10m ./...

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
	cd services/kubeapitest && GOWORK=off go vet ./... && GOWORK=off go mod tidy -diff

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd services/$$m && go mod tidy) || exit 1; done
	cd services/deploytest && GOWORK=off go mod tidy
	cd services/kubeapitest && GOWORK=off go mod tidy

docs-ui: ## refresh the embedded Swagger UI from npm (VERSION=x.y.z to pick one)
	sh services/platform/docsui/update.sh $(VERSION)

bench: ## load the shop on PostgreSQL and Redis and compare with pgbench (BENCH_DATABASE_URL, BENCH_REDIS_URL)
	go run ./services/loadgen/cmd/bench
