#!/usr/bin/env bash
# `make demo`: what anomap can do today, on built-in sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/anomap
echo "== anomap $($bin --version): ImageNet check of the pretrained EfficientNet-Lite0 backbone"
echo "   (the sample photos are the two that ship with scikit-learn; expected top-1: palace, daisy)"
$bin classify models/samples/china.jpg models/samples/flower.jpg
