# vipcast — run `make help` for the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin
GO    ?= go
export PATH := $(BIN):/usr/local/go/bin:$(PATH)
export KUBEBUILDER_ASSETS := $(BIN)

TEST_TOOLS := etcd kube-apiserver kubectl controller-gen golangci-lint

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Build every pinned tool into bin/ (skipped when already built).
	test/tools/build.sh

.PHONY: tools-test
tools-test: ## Build the tools the tests need into bin/.
	test/tools/build.sh $(TEST_TOOLS)

.PHONY: generate
generate: ## Regenerate deepcopy code, CRDs and RBAC with controller-gen.
	test/tools/build.sh controller-gen
	$(BIN)/controller-gen object paths=./api/...
	$(BIN)/controller-gen crd:crdVersions=v1 rbac:roleName=vipcast-controller paths=./api/... paths=./controller/... \
		output:crd:artifacts:config=config/crd output:rbac:artifacts:config=config/rbac

.PHONY: verify
verify: generate ## Fail when generated files are stale or code is not gofmt-clean.
	@git diff --exit-code -- api config || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "not gofmt-clean"; exit 1; }

.PHONY: build
build: ## Build the binaries into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/vipcast-controller ./controller

.PHONY: lint
lint: ## go vet and golangci-lint.
	test/tools/build.sh golangci-lint
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...

.PHONY: test
test: tools-test verify lint build ## Every test: unit, property, fuzz seeds, and integration on a real etcd + kube-apiserver.
	$(GO) test -race -count=1 ./...
	$(GO) run ./test/demo --check

.PHONY: fuzz
fuzz: ## Run each fuzz target for a while (FUZZTIME, default 30s).
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $${FUZZTIME:-30s} ./internal/iprange/
	$(GO) test -run XXX -fuzz FuzzParseRequestedIPs -fuzztime $${FUZZTIME:-30s} ./controller/internal/service/

.PHONY: bench
bench: tools-test build ## Benchmarks: allocator Go benchmarks and 10,000 Services on a real control plane.
	$(GO) test -run XXX -bench . -benchmem -benchtime 20000x ./controller/internal/allocator/
	$(GO) run ./test/bench -services 1000
	$(GO) run ./test/bench -services 10000

.PHONY: demo
demo: tools-test build ## Start a local control plane, run the controller, show a Service getting an EXTERNAL-IP.
	$(GO) run ./test/demo

.PHONY: clean
clean: ## Remove built binaries (keeps the tools).
	rm -f $(BIN)/vipcast-*
