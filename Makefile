# cairn — see README.md. `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     := bin/cairn
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test test-short demo bench lint cross fmt clean fuzz soak

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cairn

# The whole suite, with the race detector. Needs nothing beyond Go today;
# scripts/test-deps.sh installs what later components need (and is a no-op
# when it is all there).
test:
	bash scripts/test-deps.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -count=1 ./...

# Every fuzz test of a decoder of stored data (packs, blobs, index files,
# trees, manifests, key files, config, lock records, cairn.yaml), one at a
# time, 30 s each; prints the executions per decoder. `make test` runs the
# same tests on their seed corpora only.
fuzz:
	GO=$(GO) FUZZTIME=$${FUZZTIME:-30s} bash scripts/fuzz.sh

# The long run: an hour per fuzz test (FUZZTIME=8h for a night), then
# prune in a loop beside backup and copy processes for CAIRN_SOAK (10m),
# then the crash harness: backup, copy and prune processes SIGKILLed
# CAIRN_CRASH_KILLS times (1200; about 0.8 s a kill), a fresh seed each run
# unless CAIRN_CRASH_SEED is set (the test logs the seed it used).
soak:
	GO=$(GO) FUZZTIME=$${FUZZTIME:-1h} bash scripts/fuzz.sh
	CAIRN_SOAK=$${CAIRN_SOAK:-10m} $(GO) test -count=1 -timeout 2h -run 'TestPruneBesideBackupsAndCopies' -v ./cmd/cairn
	CAIRN_CRASH_KILLS=$${CAIRN_CRASH_KILLS:-1200} CAIRN_CRASH_SEED=$${CAIRN_CRASH_SEED:-$$(date +%s)} $(GO) test -count=1 -timeout 4h -run 'TestCrashHarness' -v ./cmd/cairn

# End to end on a local-directory repository in a temporary directory: the
# core round trip, then a whole application (PostgreSQL, the Elasticsearch
# emulator, a file tree) through cairn.yaml.
demo: build
	bash scripts/demo.sh $(BIN)
	GO=$(GO) bash scripts/demo-app.sh $(BIN)

# cairn against restic and borg (and kopia / a newer restic when KOPIA_BIN /
# RESTIC_BIN name binaries) on the same data, medians of 3 runs, with the
# targets of issue 12; see bench/README.md.
bench: build
	bash scripts/bench-deps.sh
	$(GO) run ./bench -cairn ./$(BIN) -repeat 3 -md bench-results.md $(BENCHFLAGS)

# gofmt, vet and staticcheck (the pinned version scripts/install-staticcheck.sh
# installs with go install; its default checks, no config).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	"$$(bash scripts/install-staticcheck.sh)" ./...

# cairn builds on Linux, macOS and FreeBSD (README, "Platforms").
cross:
	GOOS=darwin $(GO) build ./...
	GOOS=freebsd $(GO) build ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
