#!/usr/bin/env python3
"""ONNX Runtime's own whole-model static int8 of every zoo model, for the stage_overhead bench.

Writes zoo models with `lalarand zoo` (seed 1, as the bench builds them), quantizes each with
onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights, uint8 activations,
8 seeded calibration inputs) and writes `<model>.onnx` into OUT. Then:

    LALARAND_ORT_INT8_DIR=OUT cargo run --release -p lalarand-engine --example stage_overhead

Needs `pip install onnxruntime numpy` (1.31 or later) and a built `lalarand` on PATH or in
target/release.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1", "yolov3_tiny"]


class SeededReader(CalibrationDataReader):
    def __init__(self, name, shape, count=8, seed=12345):
        rng = np.random.default_rng(seed)
        self.batches = iter([{name: rng.random(shape, dtype=np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.batches, None)


def lalarand_binary():
    for candidate in [shutil.which("lalarand"), "target/release/lalarand", "target/debug/lalarand"]:
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("no lalarand binary: build it (cargo build --release -p lalarand-cli) or put it on PATH")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="directory for the quantized models")
    ap.add_argument("models", nargs="*", default=MODELS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lalarand = lalarand_binary()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            fp32 = os.path.join(tmp, f"{name}.onnx")
            subprocess.run([lalarand, "zoo", name, "--seed", "1", "--out", fp32], check=True)
            prepared = os.path.join(tmp, f"{name}.prep.onnx")
            quant_pre_process(fp32, prepared)
            import onnx
            graph_input = onnx.load(prepared).graph.input[0]
            shape = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
            out = os.path.join(args.out, f"{name}.onnx")
            quantize_static(prepared, out, SeededReader(graph_input.name, shape),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
