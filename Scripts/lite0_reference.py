#!/usr/bin/env python3
"""Independent numpy-only EfficientNet-Lite0 forward pass, the oracle for the Swift model.

Written from the architecture description (Tan & Le 2019, EfficientNet; the "lite" variant:
no squeeze-and-excitation, ReLU6, fixed stem/head) and the lukemelas EfficientNet-PyTorch
tensor names. Convolutions are plain loops over kernel taps with numpy broadcasting, BN is
applied unfolded, and padding is TensorFlow 'SAME' (asymmetric for stride 2), because the
weights were trained in TensorFlow with that padding.

Usage:
  lite0_reference.py WEIGHTS.safetensors --record OUT.bin   record stage outputs of the
      deterministic fixture input (see fixture_input) into a small binary file
  lite0_reference.py WEIGHTS.safetensors --classify IMAGE   top-5 classes (needs Pillow)
"""
import argparse
import json
import struct
import sys

import numpy as np

# (repeats, kernel, stride, expand ratio, in, out) per stage, EfficientNet-B0/Lite0.
BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320)]
BN_EPS = 1e-3


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(body[a:b], dtype="<f4").reshape(v["shape"]).astype(np.float64)
    return out


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def conv(x, w, stride, groups=1):
    """x: (C, H, W), w: (O, C/groups, k, k); TF SAME padding; float64."""
    c, h, wd = x.shape
    o, cg, k, _ = w.shape
    pt, pb = same_pads(h, k, stride)
    pl, pr = same_pads(wd, k, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    oh, ow = -(-h // stride), -(-wd // stride)
    y = np.zeros((o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for i in range(k):
            for j in range(k):
                patch = xs[:, i:i + stride * oh:stride, j:j + stride * ow:stride]  # (cg, oh, ow)
                y[g * og:(g + 1) * og] += np.einsum("oc,chw->ohw", ws[:, :, i, j], patch)
    return y


def depthwise(x, w, stride):
    c, h, wd = x.shape
    k = w.shape[2]
    pt, pb = same_pads(h, k, stride)
    pl, pr = same_pads(wd, k, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    oh, ow = -(-h // stride), -(-wd // stride)
    y = np.zeros((c, oh, ow))
    for i in range(k):
        for j in range(k):
            y += w[:, 0, i, j][:, None, None] * xp[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return y


def bn(x, p, name):
    g, b = p[name + ".weight"], p[name + ".bias"]
    m, v = p[name + ".running_mean"], p[name + ".running_var"]
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + BN_EPS) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(p, x):
    """x: (3, H, W) already normalized. Returns dict of stage outputs and logits."""
    stages = {}
    x = relu6(bn(conv(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    idx = 0
    for reps, k, s, e, cin, cout in BLOCKS:
        for r in range(reps):
            stride = s if r == 0 else 1
            inp = x
            pre = f"_blocks.{idx}."
            if e != 1:
                x = relu6(bn(conv(x, p[pre + "_expand_conv.weight"], 1), p, pre + "_bn0"))
            x = relu6(bn(depthwise(x, p[pre + "_depthwise_conv.weight"], stride), p, pre + "_bn1"))
            x = bn(conv(x, p[pre + "_project_conv.weight"], 1), p, pre + "_bn2")
            if stride == 1 and inp.shape[0] == x.shape[0]:
                x = x + inp
            idx += 1
        stages[cout] = x
    head = relu6(bn(conv(x, p["_conv_head.weight"], 1), p, "_bn1"))
    pooled = head.mean(axis=(1, 2))
    logits = p["_fc.weight"] @ pooled + p["_fc.bias"]
    return {"s2": stages[16], "s4": stages[24], "s8": stages[40], "s16": stages[112],
            "s32": stages[320], "logits": logits}


def fixture_input(h=64, w=48):
    """A deterministic, non-square input in the normalized range, from integer arithmetic
    that the Swift test reproduces exactly: pixel (c, y, x) = ((x*7 + y*13 + c*29) % 256)."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(h), np.arange(w), indexing="ij")
    rgb = ((x * 7 + y * 13 + c * 29 + (x * y) % 17) % 256).astype(np.float64)
    return (rgb - 127.0) / 128.0


def record(p, path):
    """Binary: for each stage name in order, u32 C, H, W then float32 data (C, H, W)."""
    out = forward(p, fixture_input())
    with open(path, "wb") as f:
        for name in ["s2", "s4", "s8", "s16", "s32", "logits"]:
            a = out[name]
            if a.ndim == 1:
                a = a[:, None, None]
            f.write(struct.pack("<III", *a.shape))
            f.write(a.astype("<f4").tobytes())
    print(f"wrote {path}")


def classify(p, image):
    from PIL import Image  # only for this manual check
    im = Image.open(image).convert("RGB")
    w, h = im.size
    scale = 224 / min(w, h)
    im = im.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    x = (np.asarray(im, dtype=np.float64).transpose(2, 0, 1) - 127.0) / 128.0
    logits = forward(p, x)["logits"]
    top5 = np.argsort(-logits)[:5]
    print(image, [(int(i), round(float(logits[i]), 3)) for i in top5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--record")
    ap.add_argument("--classify", nargs="*")
    a = ap.parse_args()
    p = load_safetensors(a.weights)
    if a.record:
        record(p, a.record)
    for image in a.classify or []:
        classify(p, image)


if __name__ == "__main__":
    sys.exit(main())
