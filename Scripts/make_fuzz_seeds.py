#!/usr/bin/env python3
"""Writes the PNG seed corpus for the PNG fuzz target (Fuzz/corpus/FuzzPNG): one small valid
file per colour type / bit depth / interlace / ancillary-chunk case, built with zlib alone so
the seeds do not come from the decoder under test."""
import struct, sys, zlib, os

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

def png(width, height, depth, color, rows, interlace=0, extra=b""):
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def main(out):
    os.makedirs(out, exist_ok=True)
    w = h = 8
    seeds = {
        "gray8.png": png(w, h, 8, 0, [bytes((x * 32 + y) % 256 for x in range(w)) for y in range(h)]),
        "gray1.png": png(w, h, 1, 0, [bytes([0b10101010]) for _ in range(h)]),
        "gray16.png": png(w, h, 16, 0, [b"".join(struct.pack(">H", x * 4000 + y) for x in range(w)) for y in range(h)]),
        "rgb8.png": png(w, h, 8, 2, [bytes(sum(([x * 30, y * 30, 128] for x in range(w)), [])) for y in range(h)]),
        "rgba8.png": png(w, h, 8, 6, [bytes(sum(([x * 30, y * 30, 128, 200] for x in range(w)), [])) for y in range(h)]),
        "graya8.png": png(w, h, 8, 4, [bytes(sum(([x * 30, 255 - y * 30] for x in range(w)), [])) for y in range(h)]),
        "rgb16.png": png(4, 4, 16, 2, [b"".join(struct.pack(">HHH", x * 9000, y * 9000, 30000) for x in range(4)) for y in range(4)]),
        "palette_trns.png": png(w, h, 4, 3, [bytes([(x << 4 | (x + y) % 4) for x in range(w // 2)]) for y in range(h)],
                                extra=chunk(b"PLTE", bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])) + chunk(b"tRNS", bytes([0, 128]))),
    }
    # Adam7: rows of each pass, filter byte 0; a 8x8 gray image has passes of known sizes.
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        for y in range(y0, h, dy):
            raw += b"\x00" + bytes((x * 32 + y) % 256 for x in range(x0, w, dx))
    seeds["adam7.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1))
                          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Fuzz/corpus/FuzzPNG")
