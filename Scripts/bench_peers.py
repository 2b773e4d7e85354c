#!/usr/bin/env python3
"""`make bench-peers`: anomap's EfficientNet-Lite0 against ONNX Runtime and OpenVINO.

The ONNX graphs are written here, straight from the safetensors checkpoint with onnx.helper
(no torch, no anomap code): Conv + BatchNormalization + Clip(0, 6) per layer, exactly as an
exporter would write the lukemelas EfficientNet-Lite0, TensorFlow 'SAME' padding as explicit
(asymmetric) pads. Each engine folds and fuses what it likes. Three cuts at 256x256, batch 1
and 8: features to stride 8 (the teacher anomap uses), to stride 16, and the full classifier.

Every engine's output is checked against anomap's first (normwise: max |a - b| / max |b|
<= 1e-4), then the engines are timed interleaved in one run: round after round, each engine
runs a burst of the same cut in turn (A B C A B C ...), all with 2 threads, fp32, and the
table quotes the median of every single-run time. The machine load is printed before and after.

Usage: bench_peers.py WEIGHTS ANOMAP_BENCH_EXECUTABLE [--rounds R] [--burst N] [--threads T]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320)]
STAGE_END = {"s8": 4, "s16": 10}  # index of the last block of the cut
SIDE = 256
OUTPUT_SHAPE = {"s8": lambda n: [n, 40, 32, 32], "s16": lambda n: [n, 112, 16, 16], "full": lambda n: [n, 1000]}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    return {k: np.frombuffer(body[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def build_graph(weights, cut, batch):
    """The Lite0 cut as an ONNX model, input "x" (batch, 3, 256, 256)."""
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(key):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weights[key]), key))
        return key

    inits.append(numpy_helper.from_array(np.array(0, np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.array(6, np.float32), "six"))

    def conv_bn(x, size, conv, bn, stride, groups, relu6):
        w = weights[conv]
        k = w.shape[2]
        pt, pb, out = same_pads(size, k, stride)
        y = name("conv")
        nodes.append(helper.make_node("Conv", [x, init(conv)], [y], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pt, pt, pb, pb], group=groups))
        z = name("bn")
        nodes.append(helper.make_node("BatchNormalization", [y] + [init(f"{bn}.{p}") for p in
                                      ("weight", "bias", "running_mean", "running_var")], [z], epsilon=1e-3))
        if relu6:
            r = name("relu6")
            nodes.append(helper.make_node("Clip", [z, "zero", "six"], [r]))
            z = r
        return z, out

    x, size = conv_bn("x", SIDE, "_conv_stem.weight", "_bn0", 2, 1, True)
    last = STAGE_END.get(cut, 15)
    index = 0
    for repeats, k, s, e, cin, cout in BLOCKS:
        for r in range(repeats):
            if index > last:
                break
            inc, stride = (cin, s) if r == 0 else (cout, 1)
            p = f"_blocks.{index}."
            h = x
            if e != 1:
                h, _ = conv_bn(h, size, p + "_expand_conv.weight", p + "_bn0", 1, 1, True)
            h, out = conv_bn(h, size, p + "_depthwise_conv.weight", p + "_bn1", stride, inc * e, True)
            h, _ = conv_bn(h, out, p + "_project_conv.weight", p + "_bn2", 1, 1, False)
            if stride == 1 and inc == cout:
                y = name("add")
                nodes.append(helper.make_node("Add", [h, x], [y]))
                h = y
            x, size = h, out
            index += 1
    if cut == "full":
        x, _ = conv_bn(x, size, "_conv_head.weight", "_bn1", 1, 1, True)
        pooled, flat = name("pool"), name("flat")
        nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
        nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
        nodes.append(helper.make_node("Gemm", [flat, init("_fc.weight"), init("_fc.bias")], ["y"], transB=1))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, f"lite0_{cut}", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                              [batch, 3, SIDE, SIDE])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, OUTPUT_SHAPE[cut](batch))],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class Anomap:
    """The anomap side: `anomap-bench --peers`, one warm process speaking a line protocol."""

    def __init__(self, executable, threads, scratch):
        env = dict(os.environ, ANOMAP_THREADS=str(threads))
        self.proc = subprocess.Popen([executable, "--peers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.scratch = scratch

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            sys.exit(f"bench-peers: anomap-bench answered {answer!r} to {line!r}")
        return answer

    def set_input(self, x):
        path = os.path.join(self.scratch, f"input-{x.shape[0]}.bin")
        x.astype("<f4").tofile(path)
        self.ask(f"input {path} {x.shape[0]}")

    def run(self, cut):
        path = os.path.join(self.scratch, "out.bin")
        shape = [int(v) for v in self.ask(f"run {cut} {path}").split()[1].split(",")]
        return np.fromfile(path, dtype="<f4").reshape(shape)

    def time(self, cut, count):
        return [float(v) for v in self.ask(f"time {cut} {count}").split()[1:]]

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


def make_runners(model, x, threads):
    import onnxruntime as ort
    import openvino as ov
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(ov.Core().read_model(model.SerializeToString(), b""), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1})
    request = compiled.create_infer_request()

    def run_ort():
        return session.run(None, {"x": x})[0]

    def run_ov():
        request.infer({"x": x})
        return request.get_output_tensor(0).data

    return {"ONNX Runtime": run_ort, "OpenVINO": run_ov}


def burst(fn, count):
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("anomap_bench")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per cut")
    parser.add_argument("--burst", type=int, default=15, help="runs per engine per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime
    import openvino
    print(f"bench-peers: {args.threads} threads, fp32, 256x256; onnxruntime {onnxruntime.__version__}, "
          f"openvino {openvino.__version__}; load average before: {os.getloadavg()}")
    weights = load_safetensors(args.weights)
    rng = np.random.default_rng(7)
    rows = []
    with tempfile.TemporaryDirectory(prefix="anomap-peers-") as scratch:
        anomap = Anomap(args.anomap_bench, args.threads, scratch)
        failed = False
        for batch in (1, 8):
            x = rng.uniform(-1, 1, size=(batch, 3, SIDE, SIDE)).astype(np.float32)
            anomap.set_input(x)
            for cut in ("s8", "s16", "full"):
                model = build_graph(weights, cut, batch)
                runners = make_runners(model, x, args.threads)
                reference = anomap.run(cut)
                for engine, fn in runners.items():
                    out = np.asarray(fn()).reshape(reference.shape)
                    error = float(np.max(np.abs(out - reference)) / max(np.max(np.abs(reference)), 1e-30))
                    status = "ok" if error <= 1e-4 else "MISMATCH"
                    failed |= error > 1e-4
                    print(f"  check {cut} batch {batch}: {engine} vs anomap, max|diff|/max|anomap| = {error:.2e} "
                          f"{status}")
                times = {"anomap": []} | {engine: [] for engine in runners}
                for fn in runners.values():  # warm-up
                    burst(fn, 3)
                anomap.time(cut, 3)
                for _ in range(args.rounds):
                    times["anomap"] += anomap.time(cut, args.burst)
                    for engine, fn in runners.items():
                        times[engine] += burst(fn, args.burst)
                medians = {engine: float(np.median(t)) / batch for engine, t in times.items()}
                best = min((medians[e], e) for e in runners)
                rows.append((cut, batch, medians, best))
                print(f"  {cut} batch {batch}: " + ", ".join(f"{e} {m:.2f}" for e, m in medians.items()) +
                      " ms/image")
        anomap.close()
    print(f"load average after: {os.getloadavg()}")
    label = {"s8": "Lite0 to stride 8", "s16": "Lite0 to stride 16", "full": "Lite0 classifier"}
    print()
    print("| cut (256x256) | batch | anomap ms/image | ONNX Runtime | OpenVINO | anomap / best engine |")
    print("|---|---|---|---|---|---|")
    for cut, batch, m, (best, engine) in rows:
        print(f"| {label[cut]} | {batch} | {m['anomap']:.2f} | {m['ONNX Runtime']:.2f} | {m['OpenVINO']:.2f} | "
              f"{m['anomap'] / best:.2f} (vs {engine}) |")
    if failed:
        sys.exit("bench-peers: an engine's output differs from anomap's by more than 1e-4 (see the checks above)")


if __name__ == "__main__":
    main()
