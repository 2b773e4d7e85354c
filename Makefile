# anomap — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
THREADS ?= 2

.PHONY: setup samples build release test demo bench clean

# Install apt packages and the pretrained weights when missing (idempotent, fast when done).
setup:
	@bash Scripts/setup.sh

samples:
	@bash Scripts/setup.sh --samples

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# All tests run on a release build (numeric tests are heavy; preconditions stay on with -O).
test: samples
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --disable-swift-testing

demo: samples release
	@bash Scripts/demo.sh

bench: samples release
	ANOMAP_THREADS=$(THREADS) .build/release/anomap-bench

clean:
	rm -rf .build
