.PHONY: test test-short run build vet

# The README's commands, for those who prefer make.
test:
	./scripts/test.sh

# A quick local loop: skips the slow tests (Redis restarts and pauses,
# crash tests with child processes, big batches, fault injection waiting
# for breaker cool-downs). CI and `make test` always run everything.
test-short:
	./scripts/test.sh -short -count=1

run:
	go run ./cmd/eventbus dev

build:
	go build -o bin/eventbus ./cmd/eventbus

vet:
	gofmt -l . && go vet ./...

# Benchmarks against raw go-redis and Watermill (bench/ is its own module).
# Extra flags: make bench BENCHFLAGS="-redis-url redis://127.0.0.1:6379/0"
.PHONY: bench bench-quick
bench:
	cd bench && go run . $(BENCHFLAGS)

bench-quick:
	cd bench && go run . -quick $(BENCHFLAGS)

# The library's own benchmarks against the test Redis (see scripts/test.sh).
.PHONY: bench-lib
bench-lib:
	go test -run '^$$' -bench 'XAddLoop|Publish|EndToEnd' -benchtime 3s .
	go test -run '^$$' -bench 'ConsumeBacklog' -benchtime 200000x .
	go test -run '^$$' -bench 'Latency' -benchtime 10000x .

# Coverage of the whole suite, including the child processes the tests
# start: the crash tests re-execute the test binary as consumers, and the
# cmd/eventbus tests run the CLI (built with -cover when EVENTBUS_COVER is
# set). Each test binary writes its own data to $(COVERDIR)/tests (go test
# -exec scripts/cover-exec.sh gives it its -test.gocoverdir) and its
# children inherit GOCOVERDIR=$(COVERDIR)/children; scripts/cover-report.sh
# merges them with `go tool covdata` and prints the total and the root
# package's figure, without and with the children. Processes killed with
# SIGKILL write nothing. The mode is atomic everywhere: the CLI is built
# with -race when it can, and covdata cannot merge modes.
COVERDIR ?= $(or $(TMPDIR),/tmp)/eventbus-cover
.PHONY: cover
cover:
	rm -rf $(COVERDIR) && mkdir -p $(COVERDIR)/tests $(COVERDIR)/children
	COVER_TESTS=$(COVERDIR)/tests COVER_CHILDREN=$(COVERDIR)/children \
		./scripts/test.sh -count=1 -cover -covermode=atomic -coverpkg=./... -exec $(CURDIR)/scripts/cover-exec.sh
	./scripts/cover-report.sh $(COVERDIR)

# Throughput with 1 vs 8 partitions on one redis-server and on a 3-master
# cluster, with per-process CPU (docs/scaling.md). About 5 minutes.
.PHONY: bench-scale
bench-scale:
	cd bench && go run . -scale $(BENCHFLAGS)
