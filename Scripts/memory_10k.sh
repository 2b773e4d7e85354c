#!/usr/bin/env bash
# `make bench-memory`: peak resident memory of `anomap inspect` (all outputs written) over a
# 1,000-image and a 10,000-image synthetic folder with the default model, and over 1,000 with
# the fast preset. Flat memory means the two default peaks are about the same. The folders hold hard links to the ~25 synthetic test
# parts of `make demo`'s generator (distinct files to anomap, little disk).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
work=scratch/memory-10k
rm -rf "$work"
mkdir -p "$work"
$bin/anomap-fixtures "$work/data" >/dev/null
mapfile -t sources < <(find "$work/data/test" -name '*.png' | sort)
# The default (learned) preset over 1,000 and 10,000 images; the fast preset over 1,000.
for run in learned:1000 learned:10000 fast:1000; do
    preset=${run%%:*} n=${run##*:}
    [[ -f "$work/$preset.safetensors" ]] ||
        $bin/anomap train "$work/data/train/good" -o "$work/$preset.safetensors" --preset "$preset" --quiet
    mkdir -p "$work/many-$n"
    for ((i = 0; i < n; i++)); do ln "${sources[i % ${#sources[@]}]}" "$(printf '%s/many-%d/%05d.png' "$work" "$n" "$i")"; done
    /usr/bin/time -f "%e %M" -o "$work/time-$n" $bin/anomap inspect "$work/many-$n" --model "$work/$preset.safetensors" \
        --out "$work/out-$n" --quiet --json > "$work/summary-$n.json"
    read -r seconds kib < "$work/time-$n"
    printf '%-7s inspect %5d images (all outputs): %6.1f s, %5.1f images/s, peak RSS %4d MiB  %s\n' "$preset" \
        "$n" "$seconds" "$(awk -v n="$n" -v s="$seconds" 'BEGIN { print n / s }')" "$((kib / 1024))" "$(cat "$work/summary-$n.json")"
    rm -rf "$work/out-$n" "$work/many-$n"
done
