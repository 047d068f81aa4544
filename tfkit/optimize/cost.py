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


# What one output value of each op costs in MACs, from its (weight) operand shapes. Read off the
# .tflite flatbuffer, so two models from different toolchains (tfkit, TF Model Garden) are counted
# the same way, as they run. Ops not listed (adds, activations, pooling, shifts) count 0 MACs.
def _conv_2d(shapes):  # weight (Co, kh, kw, Ci/groups)
    return shapes[1][1] * shapes[1][2] * shapes[1][3]


def _depthwise(shapes):  # weight (1, kh, kw, Co)
    return shapes[1][1] * shapes[1][2]


def _conv_3d(shapes):  # weight (kd, kh, kw, Ci, Co)
    return shapes[1][0] * shapes[1][1] * shapes[1][2] * shapes[1][3]


def _fully_connected(shapes):  # weight (units, in)
    return shapes[1][-1]


def _batch_matmul(shapes):  # (.., M, K) @ (.., K, N); adj flags are rare in converted video models
    return shapes[0][-1]


MACS_PER_OUTPUT = {"CONV_2D": _conv_2d, "DEPTHWISE_CONV_2D": _depthwise, "CONV_3D": _conv_3d,
                   "FULLY_CONNECTED": _fully_connected, "BATCH_MATMUL": _batch_matmul}


def tflite_macs(flatbuffer: bytes) -> int:
    """Multiply-accumulates of one invoke of a .tflite model (its first subgraph), by op shapes.

    TRANSPOSE_CONV counts per input value (each spreads kh*kw*Co products).

    Example:
        >>> tflite_macs(Path("stream.tflite").read_bytes())  # doctest: +SKIP
        50712345
    """
    from tfkit.convert.flatbuffer import op_name, read_model

    model = read_model(flatbuffer)
    graph = model.subgraphs[0]
    shape = lambda i: [int(d) for d in graph.tensors[i].shape] if i >= 0 else []
    total = 0
    for op in graph.operators:
        name = op_name(model, op.opcodeIndex)
        shapes = [shape(i) for i in op.inputs]
        if name == "TRANSPOSE_CONV":  # inputs: output_shape, weight (Co, kh, kw, Ci), input
            total += int(np.prod(shapes[2])) * shapes[1][0] * shapes[1][1] * shapes[1][2]
        elif name in MACS_PER_OUTPUT:
            total += int(np.prod(shape(op.outputs[0]))) * int(MACS_PER_OUTPUT[name](shapes))
    return total


def tflite_params(flatbuffer: bytes) -> int:
    """Values held in the model's constant floating-point and int8 tensors (weights and biases;
    BatchNorm is folded into them by the converter, int32 shape constants are not counted)."""
    from tfkit.convert.flatbuffer import read_model, tensor_type_names

    model = read_model(flatbuffer)
    kinds = tensor_type_names()
    total = 0
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
        if data is not None and len(data) and kinds.get(tensor.type) in ("float32", "float16", "int8"):
            total += int(np.prod(tensor.shape)) if tensor.shape is not None and len(tensor.shape) else 1
    return total
