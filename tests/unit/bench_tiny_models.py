"""Tiny real .tflite files for the benchmark tests, written with LiteRT's own flatbuffer schema (no
TensorFlow import, a few milliseconds): a clip classifier that averages each colour channel, and a
streaming classifier whose state `s_in` -> `s_out` adds up each frame's mean colour.

Example:
    >>> path = write_clip_classifier(tmp_path / "m.tflite")  # doctest: +SKIP
    >>> # input x: float32 (1, 2, 4, 4, 3) -> output y: float32 (1, 3), the per-channel mean
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfkit.convert.flatbuffer import write_model

CLIP = (2, 4, 4, 3)  # frames, height, width, channels
CLASSES = 3


def clip_classifier_bytes(clip: tuple[int, ...] = CLIP) -> bytes:
    """MEAN over frames, height and width: logits = the clip's mean colour."""
    from ai_edge_litert import schema_py_generated as schema

    def buffer(data: bytes | None = None):
        b = schema.BufferT()
        b.data = list(data) if data else None
        return b

    def tensor(name: str, shape, dtype, buffer_index: int):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer_index
        return t

    model = schema.ModelT()
    model.version, model.description = 3, "tfkit test clip classifier"
    model.buffers = [buffer(), buffer(), buffer(np.array([1, 2, 3], np.int32).tobytes()), buffer()]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.MEAN
    code.version = 1
    model.operatorCodes = [code]
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", (1, *clip), schema.TensorType.FLOAT32, 1),
                     tensor("axes", (3,), schema.TensorType.INT32, 2),
                     tensor("y", (1, clip[-1]), schema.TensorType.FLOAT32, 3)]
    graph.inputs, graph.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.ReducerOptions
    op.builtinOptions = schema.ReducerOptionsT()
    op.builtinOptions.keepDims = False
    graph.operators = [op]
    model.subgraphs = [graph]
    return write_model(model)


def stream_classifier_bytes(frame: tuple[int, ...] = CLIP[1:]) -> bytes:
    """frame (1,H,W,C) + s_in (1,C) -> s_out = s_in + the frame's mean colour, logits = the same sum."""
    from ai_edge_litert import schema_py_generated as schema

    channels, f32 = frame[-1], schema.TensorType.FLOAT32
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT() for _ in range(7)]
    model.buffers[2].data = list(np.array([1, 2], np.int32).tobytes())
    codes = []
    for builtin in (schema.BuiltinOperator.MEAN, schema.BuiltinOperator.ADD):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
    model.operatorCodes = codes
    graph = schema.SubGraphT()
    specs = [("frame", (1, *frame), f32), ("s_in", (1, channels), f32), ("axes", (2,), schema.TensorType.INT32),
             ("mean", (1, channels), f32), ("s_out", (1, channels), f32), ("logits", (1, channels), f32)]
    graph.tensors = []
    for index, (name, shape, dtype) in enumerate(specs):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, index + 1 if index != 2 else 2
        graph.tensors.append(t)
    graph.tensors[0].buffer, graph.tensors[1].buffer = 1, 3
    graph.tensors[3].buffer, graph.tensors[4].buffer, graph.tensors[5].buffer = 4, 5, 6
    graph.inputs, graph.outputs = [0, 1], [4, 5]

    def op(code: int, inputs: list[int], outputs: list[int], options=None, kind=0):
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, inputs, outputs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = kind, options
        return o

    reducer = schema.ReducerOptionsT()
    reducer.keepDims = False
    graph.operators = [op(0, [0, 2], [3], reducer, schema.BuiltinOptions.ReducerOptions),
                       op(1, [1, 3], [4], schema.AddOptionsT(), schema.BuiltinOptions.AddOptions),
                       op(1, [1, 3], [5], schema.AddOptionsT(), schema.BuiltinOptions.AddOptions)]
    model.subgraphs = [graph]
    return write_model(model)


def write_stream_classifier(path: Path) -> Path:
    path.write_bytes(stream_classifier_bytes())
    return path


def write_clip_classifier(path: Path, clip: tuple[int, ...] = CLIP) -> Path:
    path.write_bytes(clip_classifier_bytes(clip))
    return path


def write_clips(path: Path, count: int = 6, clip: tuple[int, ...] = CLIP, seed: int = 0) -> Path:
    """An eval .npz whose labels are what the classifier predicts on 'unit'-normalized pixels."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (count, clip[-1]), dtype=np.uint8)
    x = np.broadcast_to(colours[:, None, None, None, :], (count, *clip)).copy()
    np.savez(path, x=x, y=np.argmax(colours, axis=1))
    return path
