"""What a model costs before it runs: multiply-accumulates per inference (batch 1) and parameters.

MACs are read off the traced TensorFlow graph (CONV_2D, DEPTHWISE_CONV_2D, MatMul with static
shapes), so custom layers and time folding count exactly as they run.

Example:
    >>> count_macs(model)  # doctest: +SKIP
    6871040
"""
from __future__ import annotations

import numpy as np


def count_macs(model) -> int:
    """Multiply-accumulates of one inference at batch 1 (every input's batch axis set to 1)."""
    from tfkit._compat.keras import tf

    T = tf()
    specs = [T.TensorSpec((1, *t.shape[1:]) if t.shape[0] is None else t.shape, t.dtype) for t in model.inputs]
    fn = T.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    graph = fn.get_concrete_function(*specs).graph
    total = 0
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"):
            continue
        out = op.outputs[0].shape
        kernel = op.inputs[1].shape
        if not out.is_fully_defined() or not kernel.is_fully_defined():
            continue
        if op.type == "Conv2D":  # out (N, H, W, Co) x kernel (kh, kw, Ci, Co)
            total += int(np.prod(out)) * int(kernel[0] * kernel[1] * kernel[2])
        elif op.type == "DepthwiseConv2dNative":  # each output value: kh * kw MACs
            total += int(np.prod(out)) * int(kernel[0] * kernel[1])
        else:  # (.., M, K) @ (.., K, N): each output value sums K products
            k = op.inputs[0].shape[-1] if not op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x") \
                else op.inputs[0].shape[-2]
            total += int(np.prod(out)) * int(k)
    return total


def count_params(model) -> int:
    return int(model.count_params())
