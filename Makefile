.PHONY: test run build vet

# The README's commands, for those who prefer make.
test:
	./scripts/test.sh

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
