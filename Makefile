# Release-style build: static binary with the version embedded.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS := -s -w -X github.com/jambonz-go/sbc-sip-sidecar/internal/config.Version=$(VERSION)
BIN     := bin/sbc-sip-sidecar

.PHONY: build test clean

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sbc-sip-sidecar
	@./$(BIN) version

test:
	scripts/test.sh

clean:
	rm -rf bin
