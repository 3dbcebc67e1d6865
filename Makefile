# vipcast — run `make help` for the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin
GO    ?= go
export PATH := $(BIN):/usr/local/go/bin:$(PATH)
export KUBEBUILDER_ASSETS := $(BIN)

LAB_TOOLS  := etcd kube-apiserver kube-controller-manager kube-proxy kubectl
TEST_TOOLS := $(LAB_TOOLS) gobgp gobgpd controller-gen golangci-lint helm helm3 metallb-controller metallb-speaker

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Build every pinned tool into bin/ (skipped when already built).
	test/tools/build.sh

.PHONY: tools-test
tools-test: ## Build the tools the tests need into bin/.
	test/tools/build.sh $(TEST_TOOLS)

.PHONY: tools-lab
tools-lab: ## Build the tools the lab runs into bin/.
	test/tools/build.sh $(LAB_TOOLS)

.PHONY: lab-deps
lab-deps: ## Install the Debian packages the lab needs (iproute2, nftables, bird2, frr, arping, ndisc6, tcpdump) when missing.
	hack/lab-deps.sh

.PHONY: generate
generate: ## Regenerate deepcopy code, CRDs and RBAC with controller-gen.
	test/tools/build.sh controller-gen
	$(BIN)/controller-gen object paths=./api/...
	$(BIN)/controller-gen crd:crdVersions=v1 rbac:roleName=vipcast-controller paths=./api/... paths=./controller/... \
		output:crd:artifacts:config=config/crd output:rbac:artifacts:config=config/rbac
	$(GO) run ./hack/crdbounds config/crd/*.yaml
	$(BIN)/controller-gen rbac:roleName=vipcast-speaker paths=./speaker/... output:rbac:artifacts:config=config/rbac/speaker
	rm -f charts/vipcast/crds/*.yaml && cp config/crd/*.yaml charts/vipcast/crds/

.PHONY: verify
verify: generate ## Fail when generated files are stale or code is not gofmt-clean.
	@git diff --exit-code -- api config charts/vipcast/crds || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "not gofmt-clean"; exit 1; }

.PHONY: build
build: ## Build the binaries into bin/ (the controller, the speaker, the kubectl plugin, and the lab's command, vipcast-lab).
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/vipcast-controller ./controller
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/vipcast-speaker ./speaker
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kubectl-vipcast ./kubectl-vipcast
	$(GO) build -o $(BIN)/vipcast-lab ./test/lab/cmd/vipcast-lab

# The Go of the Dockerfile's build stage (golang:$(IMAGE_GO)); a test keeps the two equal.
IMAGE_GO := 1.26.8

.PHONY: image-binaries
image-binaries: ## Build what the Dockerfile builds (no Docker needed): the programs, static, into bin/image.
	GOTOOLCHAIN=go$(IMAGE_GO) hack/image-binaries.sh $(BIN)/image

.PHONY: lint
lint: ## go vet and golangci-lint.
	test/tools/build.sh golangci-lint
	$(GO) vet ./...
	$(BIN)/golangci-lint run --allow-parallel-runners ./...

.PHONY: test
test: tools-test lab-deps verify lint build image-binaries ## Every test (as root): unit, property, fuzz seeds, integration on a real API server, end-to-end in the lab.
	VIPCAST_LAB=1 $(GO) test -race -count=1 -timeout 30m ./...
	$(GO) run ./test/demo --check

.PHONY: fuzz
fuzz: ## Run each fuzz target for a while (FUZZTIME, default 30s).
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $${FUZZTIME:-30s} ./internal/iprange/
	$(GO) test -run XXX -fuzz FuzzDecode -fuzztime $${FUZZTIME:-30s} ./internal/addrset/
	$(GO) test -run XXX -fuzz FuzzParseRequestedIPs -fuzztime $${FUZZTIME:-30s} ./controller/internal/service/
	$(GO) test -run XXX -fuzz FuzzARPFrame -fuzztime $${FUZZTIME:-30s} ./speaker/internal/layer2/
	$(GO) test -run XXX -fuzz FuzzNDPMessage -fuzztime $${FUZZTIME:-30s} ./speaker/internal/layer2/
	$(GO) test -run XXX -fuzz FuzzParseKey -fuzztime $${FUZZTIME:-30s} ./speaker/internal/app/
	$(GO) test -run XXX -fuzz FuzzParseCommunities -fuzztime $${FUZZTIME:-30s} ./speaker/internal/bgp/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $${FUZZTIME:-30s} ./speaker/internal/bfd/

.PHONY: bench
bench: tools-test lab-deps build ## (root) Benchmarks: allocator and planner, 10,000 and 50,000 Services on a real control plane, L2 and BGP fail-over in the lab, VIPs into FRR, scale in the lab (creation, steady state, 30 speakers).
	$(GO) test -run XXX -bench . -benchmem -benchtime 20000x ./controller/internal/allocator/
	$(GO) test -run XXX -bench . -benchmem ./internal/planner/
	$(GO) run ./test/bench -services 1000
	$(GO) run ./test/bench -services 10000 -lb vipcast,metallb
	$(GO) run ./test/bench -services 50000
	$(GO) run ./test/bench/l2failover -nodes 3 -trials 20 -busy 2m
	$(GO) run ./test/bench/l2failover -nodes 5 -trials 20 -busy 0 -lb vipcast
	$(GO) run ./test/bench/l2safety -nodes 3 -rounds 10
	$(GO) run ./test/bench/l2safety -nodes 5 -rounds 10 -partition-trials 0
	$(GO) run ./test/bench/bgpfailover -router bird -trials 20 -scale 1000,10000 -lb vipcast,metallb -metallb-scale 1000
	$(GO) run ./test/bench/bgpfailover -router frr -trials 20 -scale "" -lb vipcast
	$(GO) run ./test/bench/scale -parts creation -modes l2,bgp -creation-services 10000
	$(GO) run ./test/bench/scale -parts steady -modes l2,bgp -steady-services 50000 -samples 20 -idle 60s
	$(GO) run ./test/bench/scale -parts many -speakers 30 -many-services 20000 -sample 50 -compare-cuts 5 -api-window 60s

.PHONY: demo
demo: tools-lab lab-deps build ## (root) In the lab: a Service gets an EXTERNAL-IP and the client reaches its pods through it.
	$(GO) run ./test/demo

.PHONY: lab-up
lab-up: tools-lab lab-deps build ## (root) Bring the lab up with the controller and keep it up until Ctrl-C.
	$(BIN)/vipcast-lab up --controller $(BIN)/vipcast-controller

.PHONY: lab-down
lab-down: ## (root) Remove whatever a crashed lab left behind (namespaces, links, processes, files).
	$(GO) run ./test/lab/cmd/vipcast-lab down --all

.PHONY: clean
clean: ## Remove built binaries (keeps the tools).
	rm -f $(BIN)/vipcast-*
