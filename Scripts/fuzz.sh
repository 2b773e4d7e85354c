#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (Fuzz/Targets) with AddressSanitizer into
# .build/fuzz and runs each for FUZZ_SECONDS (default 30), starting from the seeds in
# Fuzz/corpus/<target> (new inputs go to .build/fuzz/corpus/<target>, not the repository).
# (linked with lld: gold crashes on these objects). Prints executions and coverage per target; a crash stops with the input's path — copy it to
# Fuzz/regressions/<target>/ and `make test` replays it from then on.
#   FUZZ_SECONDS=600 make fuzz           # the long run
#   FUZZ_TARGETS="FuzzPNG FuzzJPEG" make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-FuzzPNG FuzzJPEG FuzzModelBundle FuzzRecords}"
build=.build/fuzz
export ANOMAP_FUZZ=1 ANOMAP_BACKBONE="$PWD/models/efficientnet-lite0.safetensors"
for t in $targets; do
    echo "== building $t (libFuzzer + AddressSanitizer)"
    swift build -c release --build-path "$build" --product "$t" -Xswiftc -sanitize=fuzzer,address \
        -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld 2>&1 | grep -E "error|complete" | tail -3
done
status=0
for t in $targets; do
    work="$build/corpus/$t" crashes="$build/crashes/$t"
    mkdir -p "$work" "$crashes"
    log="$build/$t.log"
    echo "== fuzzing $t for $seconds s (log: $log)"
    # Bounded memory per input: the decoders must refuse huge images before allocating.
    if ASAN_OPTIONS=detect_leaks=0 "$build/release/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "Fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
        line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        cov=$(echo "$line" | grep -oE 'cov: [0-9]+' || echo "cov: ?")
        ft=$(echo "$line" | grep -oE 'ft: [0-9]+' || echo "ft: ?")
        corp=$(echo "$line" | grep -oE 'corp: [0-9]+' || echo "corp: ?")
        echo "   $t: $runs executions in $seconds s, $cov edges, $ft features, $corp inputs in the corpus"
    else
        status=1
        echo "   $t: FAILED — crashing input(s):"; ls "$crashes" | sed "s|^|     $crashes/|"
        grep -m5 -E "ERROR|SUMMARY|Fatal" "$log" | sed 's/^/     /'
        echo "   copy the input to Fuzz/regressions/$t/ so make test replays it"
    fi
done
exit $status
