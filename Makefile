# anomap — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
THREADS ?= 2
# Compile our kernels for this CPU's vectors: AVX-512 when it has F/BW/DQ/VL (the channels-last
# kernels then take two 16-lane registers per block), else AVX2 + FMA when it has them.
# OpenBLAS picks its own kernels. Per-element arithmetic is the same fma chain on every
# width, so the numbers do not depend on the choice. The C check in Sources/CCPUGuard learns the
# choice (-Xcc) and stops a binary copied to a CPU without those vectors with one line.
HAS_AVX512 := $(shell for f in avx512f avx512bw avx512dq avx512vl; do grep -qw $$f /proc/cpuinfo 2>/dev/null || exit 1; done && echo yes)
HAS_AVX2 := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo yes)
ifeq ($(HAS_AVX512),yes)
CPU_FLAGS := -Xswiftc -target-cpu -Xswiftc skylake-avx512 -Xswiftc -DANOMAP_AVX512 -Xcc -DANOMAP_ISA_AVX512
else ifeq ($(HAS_AVX2),yes)
CPU_FLAGS := -Xswiftc -target-cpu -Xswiftc haswell -Xcc -DANOMAP_ISA_AVX2
endif
RELEASE := -c release $(CPU_FLAGS)
# OpenBLAS takes some virtual CPUs for SSE3-only ones; the tool restarts itself with the right
# kernels (BLASKernels), the test process cannot: pin them, so that tests see the kernels the
# tool uses (model bytes depend on them).
ifneq ($(CPU_FLAGS),)
export OPENBLAS_CORETYPE ?= Haswell
endif

.PHONY: setup samples build release portable test demo bench bench-peers bench-memory bench-serve fuzz test-sanitize format clean

# Install apt packages and the pretrained weights when missing (idempotent, fast when done).
setup:
	@bash Scripts/setup.sh

samples:
	@bash Scripts/setup.sh --samples

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build $(RELEASE)

# Both kernel builds on an AVX-512 machine, for a folder that has to run on CPUs with and without
# AVX-512: .build/release/anomap (AVX-512) and anomap-avx2 beside it (AVX2 + FMA, built in
# .build/avx2). At start-up the first hands the process over to the second on a CPU without
# AVX-512 (Sources/CCPUGuard); both give the same bytes. On other machines: `make release`.
portable: release
ifeq ($(HAS_AVX512),yes)
	$(SWIFT) build -c release -Xswiftc -target-cpu -Xswiftc haswell -Xcc -DANOMAP_ISA_AVX2 --build-path .build/avx2 --product anomap
	cp .build/avx2/release/anomap .build/release/anomap-avx2.partial
	mv .build/release/anomap-avx2.partial .build/release/anomap-avx2
endif

FORMATTED := Sources Tests Fuzz/Targets Fixtures/SyntheticData Fixtures/Generator Fixtures/LoopbackHTTP Fixtures/LoadGenerator Package.swift

# All tests run on a release build (numeric tests are heavy; preconditions stay on with -O).
# The code must be formatted (`make format`) and every public declaration documented.
test: samples
	$(SWIFT) format lint --strict -r $(FORMATTED)
	$(SWIFT) build $(RELEASE) --build-tests
	$(SWIFT) test $(RELEASE) --skip-build --disable-swift-testing

demo: samples release
	@bash Scripts/demo.sh

bench: release
	@bash Scripts/setup.sh --bench
	ANOMAP_THREADS=$(THREADS) .build/release/anomap-bench

# anomap's Lite0 against ONNX Runtime and OpenVINO (from PyPI, in a virtual environment under
# ~/.cache/anomap), outputs checked, timed interleaved in one run. Not part of `make test`.
bench-peers: samples release
	@THREADS=$(THREADS) bash Scripts/bench_peers.sh

# Peak memory of inspect over 1,000 and 10,000 images (about 8 minutes).
bench-memory: samples release
	@bash Scripts/memory_10k.sh

# `anomap serve` under loopback load (1/2/8/32 connections, 60 s each), a 10-minute soak, and
# `inspect --watch` over 1,000 slowly written files with two restarts (about 20 minutes).
bench-serve: samples release
	@bash Scripts/bench_serve.sh

# libFuzzer + AddressSanitizer on the decoders, the model loader and the results/marks
# readers, FUZZ_SECONDS per target (default 30).
fuzz: setup
	@bash Scripts/fuzz.sh

# The whole test suite under AddressSanitizer, then under ThreadSanitizer (C shim, parallel
# kernels and the overlapped inspect path included), each in its own build folder. Leak
# detection is off: the Swift runtime, Foundation and XCTest on Linux leak at exit.
test-sanitize: samples
	$(SWIFT) build $(RELEASE) --build-path .build/asan --sanitize=address --build-tests
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test $(RELEASE) --build-path .build/asan --sanitize=address --skip-build --disable-swift-testing
	$(SWIFT) build $(RELEASE) --build-path .build/tsan --sanitize=thread --build-tests
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test $(RELEASE) --build-path .build/tsan --sanitize=thread --skip-build --disable-swift-testing

# Formats the Swift code in place with the toolchain's swift-format (settings in .swift-format).
format:
	$(SWIFT) format -i -r $(FORMATTED)

clean:
	rm -rf .build
