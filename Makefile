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
