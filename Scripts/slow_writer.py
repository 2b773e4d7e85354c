#!/usr/bin/env python3
"""A camera station for `make bench-serve`'s watch run: writes N image files into DEST,
cycling through the SOURCES, half of them slowly in four pieces 10 ms apart (open, write,
close), half under a hidden temporary name renamed into place, a few ms apart; after each
file it writes how many are done into PROGRESS."""
import os
import sys
import time

dest, count, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sources = [open(p, "rb").read() for p in sys.argv[4:]]
os.makedirs(dest, exist_ok=True)
for k in range(count):
    data = sources[k % len(sources)]
    name = os.path.join(dest, "part-%05d.png" % k)
    if k % 2 == 0:
        with open(name, "wb") as f:
            piece = len(data) // 4 + 1
            for start in range(0, len(data), piece):
                f.write(data[start:start + piece])
                f.flush()
                time.sleep(0.01)
    else:
        temporary = os.path.join(dest, ".part-%05d.png.tmp" % k)
        with open(temporary, "wb") as f:
            f.write(data)
        os.rename(temporary, name)
        time.sleep(0.005)
    with open(progress + ".tmp", "w") as f:
        f.write(str(k + 1))
    os.rename(progress + ".tmp", progress)
