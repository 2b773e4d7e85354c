#!/usr/bin/env python3
"""Convert a legacy-format PyTorch checkpoint (.pth) to safetensors, standard library only.

Legacy torch serialization (torch.save with _use_new_zipfile_serialization=False) is a
sequence of pickles: magic number, protocol version, system info, the object itself
(tensors refer to storages by persistent id), the list of storage keys, then for each key
in that order an int64 element count followed by the raw little-endian storage bytes.
Nothing here imports torch: storages are read straight from the stream.
"""
import collections
import hashlib
import json
import os
import pickle
import struct
import sys

MAGIC = 0x1950A86A20F9469CFC6C

DTYPES = {  # storage class name -> (safetensors dtype, bytes per element)
    "FloatStorage": ("F32", 4),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "DoubleStorage": ("F64", 8),
}


class StorageRef:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class StorageType:
    def __init__(self, name):
        self.name = name


def rebuild_tensor(storage, offset, size, stride, *_):
    return TensorRef(storage, offset, size, stride)


class LegacyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "torch" and name in DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        return StorageRef(stype.name, key, numel)


def load_legacy(path):
    with open(path, "rb") as f:
        if pickle.load(f) != MAGIC:
            raise ValueError(f"{path}: not a legacy torch checkpoint (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        state = LegacyUnpickler(f).load()
        keys = pickle.load(f)
        elsize = {t.storage.key: DTYPES[t.storage.kind][1]
                  for t in state.values() if isinstance(t, TensorRef)}
        storages = {}
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            if key not in elsize:
                raise ValueError(f"{path}: storage {key} is used by no tensor")
            storages[key] = f.read(numel * elsize[key])
            if len(storages[key]) != numel * elsize[key]:
                raise ValueError(f"{path}: truncated storage {key}")
    return state, storages


def contiguous_bytes(t, storage_bytes, elsize):
    """Gather a tensor's elements in row-major order (the checkpoint stores some convolution
    weights channels-last, i.e. with permuted strides)."""
    n = 1
    for dim in t.size:
        n *= dim
    acc, contiguous = 1, True
    for dim, step in reversed(list(zip(t.size, t.stride))):
        if dim != 1 and step != acc:  # a size-1 dimension may carry any stride
            contiguous = False
        acc *= dim
    if contiguous:
        start = t.offset * elsize
        return storage_bytes[start:start + n * elsize]
    src = memoryview(storage_bytes)
    out = bytearray(n * elsize)
    index = [0] * len(t.size)
    for i in range(n):
        pos = t.offset + sum(ix * st for ix, st in zip(index, t.stride))
        out[i * elsize:(i + 1) * elsize] = src[pos * elsize:(pos + 1) * elsize]
        for d in range(len(index) - 1, -1, -1):  # odometer increment, last axis fastest
            index[d] += 1
            if index[d] < t.size[d]:
                break
            index[d] = 0
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert_pth.py INPUT.pth OUTPUT.safetensors")
    src, dst = sys.argv[1], sys.argv[2]
    state, storages = load_legacy(src)
    with open(src, "rb") as f:
        source_sha = hashlib.sha256(f.read()).hexdigest()
    header, chunks, offset = {}, [], 0
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, TensorRef) or t.storage.kind != "FloatStorage":
            continue  # num_batches_tracked (int64) is training bookkeeping, not a weight
        dtype, elsize = DTYPES[t.storage.kind]
        raw = contiguous_bytes(t, storages[t.storage.key], elsize)
        header[name] = {"dtype": dtype, "shape": list(t.size), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"source_sha256": source_sha}
    hjson = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
    os.replace(tmp, dst)
    print(f"wrote {dst}: {len(header) - 1} tensors")


if __name__ == "__main__":
    main()
