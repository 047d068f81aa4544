"""How far gzip takes a 50%-sparse int8 model below its float32 form, as a function of model size.

The pruning benchmark's goal (sparse int8 gzip <= 1/6 of float32) meets two limits of the format:
DEFLATE codes a 50%-zero int8 kernel at ~4.5 bits per weight, so even with nothing else in the file
float32 (~3.7 bytes per weight after gzip) / sparse int8 tops out near 6.4x; and per-channel int8
adds a float32 scale (incompressible) and an int32 bias per output channel, which weighs most in
small, thin models. This script measures the ratio on zoo models of growing size with the same
recipe (every kernel's 50% smallest weights zeroed, as magnitude pruning ends; BatchNorm statistics
from random clips; full-integer int8), and where the gzip bytes go. Training does not change either
limit, so the models are not trained.

Two ways around the limits are measured too, on the same models: block sparsity ("4x1", "16x1":
whole runs of input-channel weights of the 1x1 convs and Dense kernels zeroed together, so the
zeros are contiguous in TFLite's output-major layout, as `PruneConfig(block=...)` prunes), and
per-tensor int8 (one scale per kernel instead of one per output channel), alone and together.

    python benchmarks/sparse_gzip.py --json out/sparse_gzip.json    # ~13 min on 2 cores
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from _emit import emit

from tfkit.optimize.prune import block_prunable

SIZES = [  # (stages, alpha, size): the quick reference's shape, then wider and deeper
    {"stages": 3, "alpha": 1.0, "depth": 2.0, "head_channels": 128, "size": 32},
    {"stages": 5, "alpha": 1.0, "depth": 1.0, "head_channels": 0, "size": 64},
    {"stages": 7, "alpha": 1.0, "depth": 1.0, "head_channels": 0, "size": 64},
    {"stages": 7, "alpha": 1.4, "depth": 1.0, "head_channels": 0, "size": 64},
]


VARIANTS = {  # name: (block rows along the input channels, per-channel int8)
    "unstructured": (1, True),
    "4x1 blocks": (4, True),
    "per-tensor": (1, False),
    "16x1 blocks, per-tensor": (16, False),
}


def zero_smallest_half(model, block: int = 1) -> float:
    """Zero the 50% smallest-magnitude weights of every conv/dense kernel in place; with `block` > 1
    the 1x1-conv and Dense kernels lose whole (block x 1) groups of input-channel weights, ranked by
    their mean magnitude (TFMOT's AVG block pooling). Returns the kernel sparsity."""
    zeros = total = 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" not in w.name:
                continue
            v = w.numpy()
            rows = v.reshape(-1, v.shape[-1])
            if block > 1 and block_prunable(v.shape, (block, 1)) and rows.shape[0] % block == 0:
                pooled = np.abs(rows).reshape(rows.shape[0] // block, block, -1).mean(1)
                keep = np.repeat(pooled > np.quantile(pooled, 0.5), block, axis=0)
                v = (rows * keep).reshape(v.shape).astype(v.dtype)
            else:
                cut = np.quantile(np.abs(v), 0.5)
                v = np.where(np.abs(v) <= cut, 0.0, v).astype(v.dtype)
            w.assign(v)
            zeros, total = zeros + int((v == 0).sum()), total + v.size
    return zeros / max(total, 1)


def measure() -> dict:
    from dataclasses import replace

    from tfkit.convert.sweep import calibrate_batchnorm, size_breakdown
    from tfkit.convert.tflite import convert_keras
    from tfkit.models import build
    from tfkit.pipeline import DEMO_MODEL

    rows = []
    for p in SIZES:
        spec = replace(DEMO_MODEL, num_classes=7, frames=8, **p)
        clips = np.random.default_rng(0).uniform(-1, 1, (8, 8, p["size"], p["size"], 3)).astype(np.float32)
        model = calibrate_batchnorm(build(spec), clips)
        dense_fb = convert_keras(model, "float32")
        f32 = len(gzip.compress(dense_fb, 9))
        dense_weights = model.get_weights()
        variants = {}
        for name, (block, per_channel) in VARIANTS.items():
            model.set_weights(dense_weights)
            sparsity = zero_smallest_half(model, block)
            int8_fb = convert_keras(model, "int8", calibration=(c[None] for c in clips), per_channel=per_channel)
            i8 = len(gzip.compress(int8_fb, 9))
            variants[name] = {"kernel_sparsity": round(sparsity, 4), "sparse_int8_gzip": i8,
                              "reduction": round(f32 / i8, 3), "int8_gzip_parts": size_breakdown(int8_fb, gzipped=True)}
        first = variants["unstructured"]
        parts = first["int8_gzip_parts"]
        rows.append({**p, "params": int(model.count_params()), "kernel_sparsity": first["kernel_sparsity"],
                     "float32_gzip": f32, "sparse_int8_gzip": first["sparse_int8_gzip"],
                     "reduction": first["reduction"], "int8_gzip_parts": parts,
                     "reduction_without_quant_params": round(f32 / max(first["sparse_int8_gzip"] - parts["quant_params"], 1), 3),
                     "variants": variants})
        print(f"[sparse-gzip] {p} params {rows[-1]['params']}: "
              + ", ".join(f"{k} {v['reduction']}x" for k, v in variants.items()), flush=True)
    return {"rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    emit(measure(), args.json)


if __name__ == "__main__":
    main()
