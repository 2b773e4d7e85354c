#!/usr/bin/env python3
"""Writes the JPEG test fixtures and their reference pixels, once (the results are committed).

Encoder and reference decoder are Pillow's (its own bundled libjpeg build), independent of
anomap's decoder. Each fixture NAME.jpg gets NAME.ref: the expected upright 8-bit pixels as
binary netpbm (P5 gray, P6 RGB). CMYK references are converted with the multiplicative rule
R = (255 - C)(255 - K) / 255 from Pillow's decoded ink values.

Usage: make_jpeg_fixtures.py OUT_DIR   (needs numpy and Pillow)
"""
import io
import os
import sys

import numpy as np
from PIL import Image, ImageOps


def scene(h=40, w=56):
    """Gradients, a disc and stripes: edges and smooth areas for the codec to work on."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1)).astype(np.uint8)
    g = (y * 255 // (h - 1)).astype(np.uint8)
    b = np.where((x - w * 0.6) ** 2 + (y - h * 0.45) ** 2 < (h * 0.3) ** 2, 230, 30).astype(np.uint8)
    b = np.where((x // 4) % 2 == 0, b, b // 2).astype(np.uint8)
    return np.stack([r, g, b], axis=-1)


def write_ref(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    magic = b"P5" if arr.ndim == 2 else b"P6"
    with open(path, "wb") as f:
        f.write(magic + b"\n%d %d\n255\n" % (w, h))
        f.write(arr.tobytes())


def exif_with_orientation(value):
    ex = Image.Exif()
    ex[0x0112] = value
    return ex.tobytes()


def main(out):
    os.makedirs(out, exist_ok=True)
    rgb = Image.fromarray(scene())
    cases = {
        "baseline_420": (rgb, dict(quality=90)),
        "baseline_444": (rgb, dict(quality=95, subsampling=0)),
        "progressive": (rgb, dict(quality=85, progressive=True)),
        "gray": (rgb.convert("L"), dict(quality=90)),
        "cmyk": (rgb.convert("CMYK"), dict(quality=95)),
        "exif_orientation_3": (rgb, dict(quality=92, exif=exif_with_orientation(3))),
        "exif_orientation_6": (rgb, dict(quality=92, exif=exif_with_orientation(6))),
        "exif_orientation_8": (rgb, dict(quality=92, exif=exif_with_orientation(8))),
    }
    for name, (img, opts) in cases.items():
        buf = io.BytesIO()
        img.save(buf, "JPEG", **opts)
        data = buf.getvalue()
        with open(f"{out}/{name}.jpg", "wb") as f:
            f.write(data)
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
        decoded = ImageOps.exif_transpose(decoded)
        if decoded.mode == "CMYK":
            ink = np.asarray(decoded, dtype=np.float64)
            ref = np.rint((255 - ink[..., :3]) * (255 - ink[..., 3:4]) / 255)
        else:
            ref = np.asarray(decoded)
        write_ref(f"{out}/{name}.ref", ref)
        print(name, decoded.mode, np.asarray(ref).shape)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Fixtures/jpeg")
