#!/usr/bin/env bash
# `make bench-peers`: a throwaway virtual environment outside the source tree with the peer
# engines from PyPI, then Scripts/bench_peers.py against the release anomap-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ANOMAP_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/anomap/peers-venv}"
if ! "$venv/bin/python" -c 'import onnx, onnxruntime, openvino, numpy' 2>/dev/null; then
    echo "bench-peers: creating $venv (onnx, onnxruntime, openvino, numpy from PyPI)"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check onnx onnxruntime openvino numpy
fi
exec "$venv/bin/python" Scripts/bench_peers.py models/efficientnet-lite0.safetensors .build/release/anomap-bench \
    --threads "${THREADS:-2}" "$@"
