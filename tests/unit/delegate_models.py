"""Tiny third-party-like .tflite models, each built to trip one delegate rule (shared by the
delegate tests and benchmarks/delegate_coverage.py's hold-out rows). TensorFlow is imported
inside each builder, so importing this module stays light.

Example:
    >>> fb = transpose_conv_bias_segmenter()  # doctest: +SKIP
"""
from __future__ import annotations

import struct

import numpy as np

from tfkit.convert.flatbuffer import read_model, write_model

SAME_PADDING = 1  # TfLitePadding: kTfLitePaddingSame


def _convert(model, *, sparse: bool = False) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return conv.convert()


def _opcode(model, builtin: int, custom: bytes | None = None) -> int:
    from ai_edge_litert import schema_py_generated as schema

    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    code.customCode = custom
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _builtin(model, name: str) -> int:
    from ai_edge_litert import schema_py_generated as schema

    return getattr(schema.BuiltinOperator, name)


def image_segmenter(size: int = 16, *, seed: int = 0) -> bytes:
    """Conv (stride 2) then TRANSPOSE_CONV back to full size: a segmentation net in miniature."""
    from tfkit._compat.keras import keras

    K = keras()
    K.utils.set_random_seed(seed)
    x = K.Input(batch_shape=(1, size, size, 3))
    y = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = K.layers.Conv2DTranspose(2, 3, strides=2, padding="same", use_bias=False)(y)
    return _convert(K.Model(x, y))


def transpose_conv_bias_segmenter(size: int = 16) -> bytes:
    """`image_segmenter` with its TRANSPOSE_CONV rewritten as MediaPipe's custom op
    `Convolution2DTransposeBias` (inputs: data, OHWI weights, bias; options: the
    TfLiteTransposeConvParams struct), as MediaPipe's segmentation models ship it."""
    from ai_edge_litert import schema_py_generated as schema

    model = read_model(image_segmenter(size))
    graph = model.subgraphs[0]
    tconv = _builtin(model, "TRANSPOSE_CONV")
    op = next(o for o in graph.operators if max(model.operatorCodes[o.opcodeIndex].builtinCode,
                                                model.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode) == tconv)
    _, weights, data = (int(i) for i in op.inputs[:3])
    out_channels = graph.tensors[weights].shape[0]
    buf = schema.BufferT()
    buf.data = np.zeros(out_channels, np.float32).tobytes()
    model.buffers.append(buf)
    bias = schema.TensorT()
    bias.shape, bias.type, bias.buffer, bias.name = [out_channels], schema.TensorType.FLOAT32, \
        len(model.buffers) - 1, b"bias"
    graph.tensors.append(bias)
    op.opcodeIndex = _opcode(model, _builtin(model, "CUSTOM"), b"Convolution2DTransposeBias")
    op.inputs = [data, weights, len(graph.tensors) - 1]
    op.builtinOptionsType, op.builtinOptions = 0, None
    op.customOptions = list(struct.pack("<iiii", SAME_PADDING, 2, 2, 0))  # padding, stride w, h, activation
    return write_model(model)


def unknown_custom_op_model(size: int = 16) -> bytes:
    """An image model whose last op is a vendor's custom op that no stock runtime knows."""
    model = read_model(image_segmenter(size))
    graph = model.subgraphs[0]
    graph.operators[-1].opcodeIndex = _opcode(model, _builtin(model, "CUSTOM"), b"MyVendorOp")
    graph.operators[-1].builtinOptionsType, graph.operators[-1].builtinOptions = 0, None
    return write_model(model)


def sparse_weights_model(units: int = 64) -> bytes:
    """A dense head with 90%-zero weights converted with EXPERIMENTAL_SPARSITY: its weights are
    stored sparse and expanded by a DENSIFY op, as pruned third-party models ship."""
    from tfkit._compat.keras import keras

    K = keras()
    x = K.Input(batch_shape=(1, 16, 16, 3))
    y = K.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(x)
    y = K.layers.GlobalAveragePooling2D()(y)
    y = K.layers.Dense(units, activation="relu", name="fc1")(y)
    y = K.layers.Dense(4, name="fc2")(y)
    m = K.Model(x, y)
    rng = np.random.default_rng(0)
    for name in ("conv", "fc1"):
        w, b = m.get_layer(name).get_weights()
        w = np.where(rng.uniform(size=w.shape) < 0.9, 0.0, w).astype(np.float32)
        m.get_layer(name).set_weights([w, b])
    return _convert(m, sparse=True)


def clip_model_5d(frames: int = 4, size: int = 16) -> bytes:
    """A video clip model that folds time into the batch and back: 5-D RESHAPEs and a 5-D MEAN."""
    import tensorflow as tf

    from tfkit._compat.keras import keras

    K = keras()
    x = K.Input(batch_shape=(1, frames, size, size, 3))
    y = K.layers.Reshape((frames * size, size, 3))(x)
    y = K.layers.Conv2D(8, 3, padding="same", activation="relu")(y)
    y = K.layers.Reshape((frames, size, size, 8))(y)
    y = K.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2, 3]))(y)
    return _convert(K.Model(x, K.layers.Dense(3)(y)))
