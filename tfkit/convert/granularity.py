"""Per-layer int8 weight granularity: per-channel scales where a layer needs them, per-tensor elsewhere.

TFLite's quantizer takes one granularity for the whole model. Both variants of one calibrated
model (`repair.quantize(..., granularity=...)`) have the same graph and the same activation
ranges; they differ only in each weighted op's kernel and bias tensors. `mix` takes the per-channel
file and swaps in the per-tensor kernel and bias of the named ops, so each layer gets its own choice.

Per-channel parameters cost bytes per output channel (a float32 scale and an int64 zero point for
the kernel, and again for the bias: 24 B), the main reason small int8 files are far from 4x smaller
than float32. Per-tensor scales are safe for a layer whose output channels have similar weight
ranges; `per_tensor_error` measures that for every weighted op: the error of its per-tensor kernel
against the per-channel one, relative to each output channel's own weight RMS, averaged over
channels (a channel whose weights are far smaller than the layer's largest rounds to ~zero: ~1).

Example:
    >>> pc, pt = quantize(cal, granularity="per_channel"), quantize(cal, granularity="per_tensor")  # doctest: +SKIP
    >>> errors = per_tensor_error(pc, pt)  # {op output name: error}, safest first
    >>> mixed = mix(pc, pt, [name for name, e in errors.items() if e < 0.05])
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tfkit.errors import ConversionError

WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"})
_FLOAT32, _INT32, _INT8 = 0, 2, 9  # schema TensorType


def _model(flatbuffer: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, str(builtin))


def _weighted(model, kernel_type: int = _INT8) -> dict[str, tuple]:
    """{op output tensor name: (op, kernel tensor index, bias tensor index or None)} of the
    weighted ops of subgraph 0 whose constant kernel has `kernel_type` (int8; 0: float32)."""
    sg = model.subgraphs[0]
    found = {}
    for op in sg.operators:
        if _op_name(model, op) not in WEIGHTED_OPS or len(op.inputs) < 2:
            continue
        kernel = int(op.inputs[1])
        bias = int(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if kernel < 0 or sg.tensors[kernel].type != kernel_type or model.buffers[sg.tensors[kernel].buffer].data is None:
            continue
        found[sg.tensors[int(op.outputs[0])].name.decode()] = (op, kernel, bias)
    return found


def _values(model, tensor_index: int) -> np.ndarray:
    t = model.subgraphs[0].tensors[tensor_index]
    data = model.buffers[t.buffer].data
    dtype = {_INT8: np.int8, _INT32: np.int32, _FLOAT32: np.float32}[t.type]
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype).reshape(t.shape)


def _dequantized(model, tensor_index: int) -> tuple[np.ndarray, int]:
    """(float kernel, output-channel axis)."""
    t = model.subgraphs[0].tensors[tensor_index]
    q = t.quantization
    axis = int(q.quantizedDimension or 0)
    scale = np.asarray(q.scale, np.float64)
    zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else 0, np.float64)
    v = _values(model, tensor_index).astype(np.float64)
    if scale.size > 1:
        shape = [1] * v.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (v - zero) * scale, axis


def per_tensor_error(per_channel: bytes, per_tensor: bytes) -> dict[str, float]:
    """{weighted op output name: error of its per-tensor kernel relative to each output channel's
    weight RMS, averaged over channels}, smallest (safest) first. Ops whose kernel is per-tensor in
    both files score 0."""
    pc, pt = _model(per_channel), _model(per_tensor)
    a, b = _weighted(pc), _weighted(pt)
    errors = {}
    for name, (_, k_pc, _) in a.items():
        if name not in b:
            continue
        w_pc, axis = _dequantized(pc, k_pc)
        w_pt, _ = _dequantized(pt, b[name][1])
        if w_pc.shape != w_pt.shape:
            continue
        other = tuple(i for i in range(w_pc.ndim) if i != axis)
        rms = np.sqrt(np.mean(w_pc ** 2, axis=other))
        err = np.sqrt(np.mean((w_pt - w_pc) ** 2, axis=other))
        errors[name] = float(np.mean(err / (rms + 1e-12))) if rms.size else 0.0
    return dict(sorted(errors.items(), key=lambda kv: kv[1]))


def _copy_tensor(dst_model, dst_index: int, src_model, src_index: int) -> None:
    """dst tensor takes src tensor's quantization and values (same shape and type)."""
    dst, src = dst_model.subgraphs[0].tensors[dst_index], src_model.subgraphs[0].tensors[src_index]
    if list(dst.shape) != list(src.shape) or dst.type != src.type:
        raise ConversionError(f"granularity mix: tensor {dst.name.decode()!r} differs between the two files")
    dst.quantization = src.quantization
    set_values(dst_model, dst_index, np.array(src_model.buffers[src.buffer].data, np.uint8))


def set_values(model, tensor_index: int, data: np.ndarray) -> None:
    """Replace one constant tensor's bytes; the converter shares equal constants' buffers, so a
    shared one is not written through: this tensor gets a buffer of its own."""
    t = model.subgraphs[0].tensors[tensor_index]
    data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).copy()
    if sum(1 for other in model.subgraphs[0].tensors if other.buffer == t.buffer) == 1:
        model.buffers[t.buffer].data = data
        return
    from tensorflow.lite.python import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = data
    model.buffers.append(buffer)
    t.buffer = len(model.buffers) - 1


def mix(per_channel: bytes, per_tensor: bytes, per_tensor_ops: Iterable[str]) -> bytes:
    """The per-channel file with the named weighted ops' kernels and biases taken from the
    per-tensor file (both from one calibrated model: same graph, same activation ranges)."""
    from tensorflow.lite.tools import flatbuffer_utils

    names = set(per_tensor_ops)
    if not names:
        return per_channel
    pc, pt = _model(per_channel), _model(per_tensor)
    a, b = _weighted(pc), _weighted(pt)
    missing = sorted(names - (set(a) & set(b)))
    if missing:
        raise ConversionError(f"granularity mix: no int8 weighted op named {missing[0]!r} in both files")
    for name in names:
        (_, k_dst, b_dst), (_, k_src, b_src) = a[name], b[name]
        _copy_tensor(pc, k_dst, pt, k_src)
        if (b_dst is None) != (b_src is None):
            raise ConversionError(f"granularity mix: op {name!r} has a bias in only one file")
        if b_dst is not None:
            _copy_tensor(pc, b_dst, pt, b_src)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(pc))
