# anomap — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
THREADS ?= 2
# Compile our kernels for AVX2 + FMA when this CPU has them (OpenBLAS picks its own kernels).
CPU_FLAGS := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo "-Xswiftc -target-cpu -Xswiftc haswell")
RELEASE := -c release $(CPU_FLAGS)

.PHONY: setup samples build release test demo bench clean

# Install apt packages and the pretrained weights when missing (idempotent, fast when done).
setup:
	@bash Scripts/setup.sh

samples:
	@bash Scripts/setup.sh --samples

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build $(RELEASE)

# All tests run on a release build (numeric tests are heavy; preconditions stay on with -O).
test: samples
	$(SWIFT) build $(RELEASE) --build-tests
	$(SWIFT) test $(RELEASE) --skip-build --disable-swift-testing

demo: samples release
	@bash Scripts/demo.sh

bench: samples release
	ANOMAP_THREADS=$(THREADS) .build/release/anomap-bench

clean:
	rm -rf .build
