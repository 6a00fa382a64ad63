# Fuseline — the two set-up commands are `make demo` and `make test`.
GO      ?= go
FUZZTIME ?= 20s

.PHONY: all build demo test deps vet specs bench fuzz soak clean

all: build

build:
	$(GO) build -o bin/fuseline ./cmd/fuseline

# The main job: end-to-end provisioning of a virtual board, reports written.
demo: build
	./bin/fuseline demo

# Every test: installs what the tests need, then vet and the whole suite
# (the Ginkgo specs in specs/ run under go test).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

# QA: the Ginkgo specs alone, with a JUnit report (TARGET=virtual|qemu|board,
# LABELS='esp32s3 && !slow'; TARGET=board needs FIXTURE=fixture.yaml SLOT=slot1).
# A target the specs cannot run on fails the run with the reason.
TARGET ?= virtual
LABELS ?=
FIXTURE ?=
SLOT ?=
specs:
	$(GO) test -count=1 -timeout 30m ./specs/ -target=$(TARGET) $(if $(FIXTURE),-fixture='$(FIXTURE)') $(if $(SLOT),-slot='$(SLOT)') \
		-ginkgo.junit-report=$(CURDIR)/junit-specs.xml $(if $(LABELS),-ginkgo.label-filter='$(LABELS)')

# Benchmarks: figures are ratios against a baseline measured in the same run.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout 60m ./...
	FUSELINE_BENCH_MODEL=1 $(GO) test -run='^TestEndToEndModelTime$$' -v -timeout 20m ./provisioning

# Every fuzz target for a short budget each (FUZZTIME=2m for longer).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# Long fault campaigns and soaks: the fault campaign (the Soak tests) and the
# specs' slow power-cut table (label slow, gated on FUSELINE_SOAK). Both run
# even when the first fails; the target fails if either did.
soak:
	@rc=0; \
	FUSELINE_SOAK=1 $(GO) test -count=1 -v -timeout 120m -run 'Soak' ./... || rc=1; \
	FUSELINE_SOAK=1 $(GO) test -count=1 -timeout 60m -run '^TestSpecs$$' ./specs/ -ginkgo.label-filter='slow' -ginkgo.v || rc=1; \
	exit $$rc

clean:
	rm -rf bin fuseline-demo
