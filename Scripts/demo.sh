#!/usr/bin/env bash
# `make demo`: anomap's whole loop on a built-in synthetic dataset — train on good parts,
# inspect the test parts, evaluate against the ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
work=scratch/demo
rm -rf "$work"
mkdir -p "$work"
echo "== 1/4 generating a synthetic dataset (textured parts with cracks, scratches, spots) in $work/data"
$bin/anomap-fixtures "$work/data"
echo "== 2/4 training on $work/data/train/good"
$bin/anomap train "$work/data/train/good" -o "$work/model.safetensors"
echo "== 3/4 inspecting $work/data/test"
$bin/anomap inspect "$work/data/test" --model "$work/model.safetensors" --out "$work/inspect" --report "$work/report" || true
echo "== 4/4 evaluating against the ground-truth masks"
$bin/anomap eval "$work/data" --model "$work/model.safetensors" --out "$work/eval" --report "$work/eval-report"
echo
echo "Heatmaps, overlays and masks: $work/inspect/test/<type>/<name>_{heatmap,overlay,mask}.png"
echo "Per-image results:            $work/inspect/results.csv (and results.json)"
echo "Metrics and plots:            $work/eval/metrics.json, roc.svg, pr.svg, scores.svg"
echo "Triage reports (any browser): $work/report/index.html and $work/eval-report/index.html"
