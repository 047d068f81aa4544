"""Keras -> TFLite conversion for every registered precision, with a fixed batch of 1 and a named
signature.

Example:
    >>> flatbuffer = convert_keras(model, "int8", calibration=clips)  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from tfkit.convert.variants import VARIANTS
from tfkit.errors import ConversionError, UsageError, first_line


def _fixed_batch(model):
    """`model` with batch size 1, so every tensor shape is static (no dynamic reshapes); output
    names are kept, since they become the TFLite signature's output names. A model whose inputs
    already have a fixed batch (a block cut out of a time-folded model: batch T) is kept as it is."""
    from tfkit._compat.keras import keras

    if all(t.shape[0] is not None for t in model.inputs):
        return model
    K = keras()
    inputs = [K.Input(shape=t.shape[1:], batch_size=1, name=t.name.split(":")[0], dtype=t.dtype)
              for t in model.inputs]
    outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    named = [K.layers.Activation("linear", name=n)(o) for n, o in zip(model.output_names, outputs)]
    return K.Model(inputs, named if len(named) > 1 else named[0], name=f"{model.name}_b1")


def keras_converter(fixed):
    """A TFLiteConverter for the batch-1 Keras model `fixed`, with the same serving signature
    (input names, outputs by output layer name) that `from_keras_model` gives, about 10x sooner.

    `from_keras_model` first writes the model as a Keras SavedModel, which traces every layer's
    call on its own: measured 26 s of a 29 s float32 conversion of a 9-block MobileNetV2. Here one
    inference function is traced, its variables are folded into constants, and a function calling
    that frozen graph (no variables left to checkpoint: saving them took 4.5 of the 5.7 s that
    remained) is what takes the converter's SavedModel route, signature names and all. Measured on
    the same model: 29 s -> 2.4 s, the same outputs and tensor names."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tfkit._compat.keras import tf

    T = tf()
    specs = [T.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in fixed.inputs]
    names = list(fixed.output_names)

    def serve(*inputs):
        outputs = fixed(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs, strict=True))

    traced = T.function(serve, input_signature=specs).get_concrete_function()
    frozen = convert_variables_to_constants_v2(traced)
    structure = traced.structured_outputs  # the frozen function returns a flat list

    def serve_frozen(*inputs):
        return T.nest.pack_sequence_as(structure, frozen(*inputs))

    function = T.function(serve_frozen, input_signature=specs)
    holder = T.Module()  # what the SavedModel tracks: just the function
    holder.serve = function
    return T.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)


def convert_keras(model, precision: str, *, calibration: Iterable[np.ndarray] | None = None,
                  sparse: bool = False, per_channel: bool = True) -> bytes:
    """Convert a tf_keras model to a TFLite flatbuffer in the given precision.

    `calibration` yields float input arrays of shape (1, ...), or for multi-input models dicts
    {input name: array} (the representative dataset); the calibrated precisions (int8, int16x8)
    require it, except for a QAT model (tfkit.convert.qat), whose learned ranges suffice.
    `sparse` stores pruned weights in TFLite's sparse tensor format (Optimize.EXPERIMENTAL_SPARSITY):
    smaller files where a kernel is mostly zeros, decoded back to dense at load.
    `per_channel=False` quantizes each conv/dense kernel with one scale instead of one per output
    channel (what some older DSP/NPU drivers want): fewer float32 scales in the file, which do not
    compress, usually at some accuracy cost."""
    from tfkit._compat.keras import tf

    T = tf()
    variant = VARIANTS.get(precision)
    fixed = _fixed_batch(model)
    converter = keras_converter(fixed)
    optimizations = [T.lite.Optimize.DEFAULT] if variant.optimize else []
    if sparse:
        optimizations.append(T.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if optimizations:
        converter.optimizations = optimizations
    if variant.float16_weights:
        converter.target_spec.supported_types = [T.float16]
    if not per_channel:
        converter._experimental_disable_per_channel = True  # TF's only switch for it (2.21)
    # A QAT model carries its own activation ranges: calibration only fills tensors QAT left open.
    learned_ranges = any(type(layer).__name__.startswith("QuantizeWrapper") for layer in model.layers)
    calibrate = variant.needs_calibration and not (learned_ranges and calibration is None)
    if calibrate:
        if calibration is None:
            raise UsageError(f"precision {precision!r} needs calibration clips (a dataset)")
        samples = list(calibration)
        if not samples:
            raise UsageError(f"precision {precision!r} got an empty calibration set")
        name = fixed.inputs[0].name.split(":")[0]

        def representative():
            # Dicts keyed by signature input name: a list form silently breaks multi-input models.
            for s in samples:
                yield ({k: np.asarray(v, np.float32) for k, v in s.items()} if isinstance(s, dict)
                       else {name: np.asarray(s, np.float32)})

        converter.representative_dataset = representative
    converter.target_spec.supported_ops = {
        "builtins": [T.lite.OpsSet.TFLITE_BUILTINS],
        # Without a representative dataset the converter refuses INT8-only op sets.
        "int8": [T.lite.OpsSet.TFLITE_BUILTINS_INT8 if calibrate else T.lite.OpsSet.TFLITE_BUILTINS],
        "int16x8": [T.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8],
    }[variant.ops]
    if variant.integer_io:
        converter.inference_input_type = getattr(T, variant.integer_io)
        converter.inference_output_type = getattr(T, variant.integer_io)
    try:
        with warnings.catch_warnings():
            # TF's own calibrator still uses the deprecated tf.lite.Interpreter; not ours to fix.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected.*")
            return converter.convert()
    except Exception as e:
        first = first_line(e)
        raise ConversionError(f"TFLite conversion to {precision} failed: {first}") from e
