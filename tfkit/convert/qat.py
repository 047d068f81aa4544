"""Quantization-aware training (TFMOT, default 8-bit scheme) for tfkit's tf_keras video models,
and their conversion to full-integer TFLite.

TFMOT knows only stock Keras layers. tfkit's own layers get a quantize config from one table,
`LAYER_RULES` (layer class name -> rule), not from a chain of ifs:

- "pass_through": values only move (reshape, slice, pad, concat, depth-to-space). No weight
  quantizer and no output quantizer: the int8 tensor goes through with its scale, so the
  converter emits the op in int8 with no QUANTIZE/DEQUANTIZE around it.
- "output": arithmetic without weights (hard-swish, multiply). The output gets an 8-bit moving
  average quantizer, the range the int8 kernel will use.
- "fold": BatchNormalization. Annotated with TFMOT's default (no config of ours), so TFMOT's
  Conv2D/DepthwiseConv2D/Dense + BN (+ReLU) transforms fold it into the conv; a config of ours on
  BN would stop that fold and leave float MUL/ADD islands. A BN after any other layer cannot be
  folded: it gets an output quantizer (its MUL/ADD then run in int8).
- "leave": not annotated (input layers; TFMOT adds its own QuantizeLayer after them).

Layers TFMOT's default registry knows get its own configs. Anything else is refused with a
`UsageError` naming the layer; `register_quantize_config` adds a rule for a new layer class.

Example:
    >>> from tfkit.convert.qat import quantize_aware, convert_qat
    >>> qat = quantize_aware(model)                       # doctest: +SKIP
    >>> flatbuffer = convert_qat(qat, calibration=clips)  # doctest: +SKIP
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tfkit.convert.qat_train import (  # noqa: F401 - re-exported: tfkit.convert.qat is the QAT API
    calibrate_ranges,
    float_from_qat,
    freeze_batchnorm,
    train_qat,
)
from tfkit.errors import ConversionError, UsageError

PASS_THROUGH, OUTPUT, FOLD, LEAVE = "pass_through", "output", "fold", "leave"
RULES = (PASS_THROUGH, OUTPUT, FOLD, LEAVE)
# Layers TFMOT folds a following BatchNormalization into (default_8bit_transforms).
_FOLDS_BN = ("Conv2D", "DepthwiseConv2D", "Dense")

# Layer class name -> rule (or a zero-argument factory returning a tfmot QuantizeConfig).
# Stock layers TFMOT's default 8-bit registry supports are not listed: it handles them.
LAYER_RULES: dict[str, str | Callable[[], object]] = {
    # tfkit data movement (tfkit/models/layers.py)
    "FoldTime": PASS_THROUGH,
    "UnfoldTime": PASS_THROUGH,
    "TemporalShift": OUTPUT,  # a fixed depthwise conv: its output needs its own range
    "FrameStack": PASS_THROUGH,
    "StreamShift": PASS_THROUGH,
    "DepthToSpace": PASS_THROUGH,
    "TimeToRows": PASS_THROUGH,
    "RowsToTime": PASS_THROUGH,
    "StreamBuffer": PASS_THROUGH,
    # tfkit arithmetic
    "HardSwish": OUTPUT,
    "HardSigmoid": OUTPUT,
    # WindowMean has three outputs; TFMOT's wrapper quantizes single outputs only. Its mean is
    # calibrated at conversion instead (convert_qat(..., calibration=...)).
    "WindowMean": PASS_THROUGH,
    # stock Keras layers the default registry lacks
    "Multiply": OUTPUT,
    "Subtract": OUTPUT,
    "Maximum": OUTPUT,
    "Minimum": OUTPUT,
    "Average": OUTPUT,
    "Rescaling": OUTPUT,
    "Resizing": OUTPUT,
    "BatchNormalization": FOLD,
    "InputLayer": LEAVE,
}


def register_quantize_config(class_name: str, config_factory: str | Callable[[], object]) -> None:
    """Tell `quantize_aware` how to quantize layers of class `class_name`: "pass_through",
    "output", "leave", or a zero-argument factory returning a tfmot `QuantizeConfig` (its class
    must be serializable: get_config, and from_config(get_config()) must rebuild it).

    Example:
        >>> register_quantize_config("MyReshape", "pass_through")
    """
    if not (callable(config_factory) or config_factory in RULES):
        raise UsageError(f"quantize rule for {class_name!r} must be 'pass_through', 'output', 'leave' or a "
                         f"factory returning a tfmot QuantizeConfig; got {config_factory!r}")
    LAYER_RULES[class_name] = config_factory


@functools.cache
def _configs() -> dict[str, type]:
    """tfkit's QuantizeConfig classes, defined on first use (importing tfmot loads TensorFlow)."""
    from tfkit._compat.keras import tfmot

    Q = tfmot().quantization.keras

    class TfkitPassThroughQuantizeConfig(Q.QuantizeConfig):
        """Data movement: no weights, no requantization; the input's int8 scale carries through."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class TfkitOutputQuantizeConfig(TfkitPassThroughQuantizeConfig):
        """Arithmetic without weights: the output gets an 8-bit moving-average range."""

        def get_output_quantizers(self, layer):
            return [Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                        narrow_range=False)]

    # Keys are the class names: TFMOT serializes a config by its class name.
    return {c.__name__: c for c in (TfkitPassThroughQuantizeConfig, TfkitOutputQuantizeConfig)}


def _inbound_classes(model, layer) -> set[str]:
    """Classes of the layers feeding `layer` inside `model`. A layer can carry nodes of other
    graphs: after TFMOT's strip_pruning/strip_clustering each conv is also still called by its
    old wrapper, which is no conv, and reading that node would stop BN folding (float MUL/ADD
    islands in int8). Only the nodes that belong to `model` count."""
    own = getattr(model, "_network_nodes", None)
    nodes = [node for i, node in enumerate(layer._inbound_nodes)
             if not own or f"{layer.name}_ib-{i}" in own]  # tf_keras's node key
    return {type(src).__name__ for node in nodes for src in _flatten(node.inbound_layers)}


def _flatten(x) -> list:
    return [y for item in x for y in _flatten(item)] if isinstance(x, (list, tuple)) else [x]


def _config_for(model, layer, registry):
    """The QuantizeConfig for one layer, None for TFMOT's default, or LEAVE."""
    name = type(layer).__name__
    rule = LAYER_RULES.get(name)
    if rule == LEAVE:
        return LEAVE
    if rule == FOLD:
        if _inbound_classes(model, layer) <= set(_FOLDS_BN):
            return None  # TFMOT's transform folds it into the conv before it
        return _configs()["TfkitOutputQuantizeConfig"]()
    if rule == PASS_THROUGH or rule == OUTPUT:
        if layer.weights:
            raise UsageError(f"layer {layer.name!r} ({name}) has weights but its quantize rule is {rule!r}, "
                             "which quantizes no weights; register a QuantizeConfig factory for it with "
                             "tfkit.convert.qat.register_quantize_config")
        return _configs()["TfkitPassThroughQuantizeConfig" if rule == PASS_THROUGH else "TfkitOutputQuantizeConfig"]()
    if callable(rule):
        return rule()
    if registry.supports(layer):
        return None
    kind = "layer with weights" if layer.weights else "layer"
    raise UsageError(
        f"unsupported {kind} for QAT: {layer.name!r} ({name}); TFMOT's default 8-bit registry does not "
        f"know it. Register a config with tfkit.convert.qat.register_quantize_config({name!r}, "
        "'pass_through' | 'output' | factory) before calling quantize_aware.")


def _check_model(model) -> None:
    from tfkit._compat.keras import keras

    K = keras()
    if not isinstance(model, K.Model):
        raise UsageError(f"QAT needs a tf_keras model (tfkit._compat.keras.keras()); got {type(model).__name__}. "
                         "Keras 3 models cannot go through TFMOT: rebuild with tfkit.models.build.")
    if not (isinstance(model, K.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UsageError(f"QAT needs a Functional or Sequential model; {model.name!r} is a subclassed "
                         f"{type(model).__name__}. Rewrite it with the functional API (tfkit.models.build).")
    for layer in model.layers:
        if isinstance(layer, K.layers.Lambda):
            raise UsageError(f"Lambda layer {layer.name!r} cannot be quantized (its function is opaque to "
                             "TFMOT); replace it with a custom layer and register_quantize_config for it.")
        if isinstance(layer, K.Model):
            raise UsageError(f"nested model {layer.name!r} inside {model.name!r}: TFMOT cannot quantize a model "
                             "inside a model; flatten it into one functional graph.")


def scope_objects(model=None) -> dict[str, type]:
    """Everything `quantize_scope` needs to (de)serialize a tfkit QAT model: tfkit's layers and
    configs, plus the classes of `model`'s layers and of their quantize configs."""
    from tfkit.models.layers import custom_objects

    objects = {**custom_objects(), **_configs()}
    for layer in (model.layers if model is not None else []):
        for obj in (getattr(layer, "layer", layer), getattr(layer, "quantize_config", None)):
            if obj is not None:
                objects.setdefault(type(obj).__name__, type(obj))
    return objects


def annotate(model):
    """A clone of `model` with every layer annotated for QAT (BN and inputs left for TFMOT's
    folding); the original is never touched. Weights are copied by layer name."""
    from tfkit._compat.keras import tfmot
    from tfkit.models.clone import clone_wrapped

    _check_model(model)
    Q = tfmot().quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    plan = {layer.name: _config_for(model, layer, registry) for layer in model.layers}

    def wrap(fresh, original):
        config = plan[original.name]
        return fresh if isinstance(config, str) else Q.quantize_annotate_layer(fresh, config)

    with Q.quantize_scope(scope_objects(model)):
        return clone_wrapped(model, wrap)


def quantize_aware(model, *, preserve_sparsity: bool = False, preserve_clusters: bool = False,
                   calibration: np.ndarray | None = None):
    """A new QAT model (fake-quantized weights and activations) from a float tf_keras model;
    `model` is not modified. `preserve_sparsity` uses TFMOT's prune-preserving scheme (PQAT): the
    zeros of a pruned model stay zero through QAT fine-tuning and so through int8.
    `preserve_clusters` uses TFMOT's cluster-preserving scheme (CQAT, for a model from
    tfkit.optimize.cluster): Conv2D and Dense kernels stay on their shared values (trained
    centroids) through QAT fine-tuning; TFMOT does not preserve DepthwiseConv2D clusters. Both
    flags together give prune- and cluster-preserving QAT (PCQAT) for a pruned, then clustered model.
    `calibration` (normalized float clips, e.g. 48 training clips) starts every activation range
    at the float model's range over them (`calibrate_ranges`) instead of TFMOT's [-6, 6]; without
    it a short fine-tune ends with ranges near [-6, 6] and int8 below post-training int8.

    Example:
        >>> qat = quantize_aware(build(VideoModelSpec(frames=4, size=32)))  # doctest: +SKIP
        >>> cqat = quantize_aware(clustered.model, preserve_clusters=True)  # doctest: +SKIP
    """
    from tfkit._compat.keras import tfmot

    mot = tfmot()
    Q = mot.quantization.keras
    annotated = annotate(model)
    combine = mot.experimental.combine
    if preserve_clusters:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=preserve_sparsity)
    elif preserve_sparsity:
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = Q.default_8bit.Default8BitQuantizeScheme()
    with Q.quantize_scope(scope_objects(annotated)):
        try:
            qat = Q.quantize_apply(annotated, scheme)
        except (RuntimeError, ValueError) as e:
            raise UsageError(f"TFMOT could not quantize {model.name!r}: {str(e).splitlines()[0]} "
                             "Register a config for the layer with tfkit.convert.qat.register_quantize_config.") from e
    if calibration is not None:
        calibrate_ranges(qat, calibration)
    return qat


def quantized_layer_coverage(qat_model) -> dict[str, list[str]]:
    """Which layers of a QAT model are wrapped (fake-quantized or pass-through) and which are not
    (Input layers and BN folded into its conv are expected among the latter)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer, quantize_wrapper

    out = {"wrapped": [], "quantize_layer": [], "plain": []}
    for layer in qat_model.layers:
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            out["wrapped"].append(layer.layer.name)
        elif isinstance(layer, quantize_layer.QuantizeLayer):
            out["quantize_layer"].append(layer.name)
        else:
            out["plain"].append(f"{layer.name} ({type(layer).__name__})")
    return out


@dataclass(frozen=True)
class QatConversion:
    flatbuffer: bytes
    float_activations: int
    op_counts: dict
    xnnpack_partitions: int

    def summary(self) -> dict:
        return {"bytes": len(self.flatbuffer), "float_activations": self.float_activations,
                "xnnpack_partitions": self.xnnpack_partitions, "ops": self.op_counts}


def convert_qat(qat_model, *, calibration: Iterable[np.ndarray] | None = None,
                strict: bool = True) -> bytes:
    """Convert a QAT model to full-integer int8 TFLite (batch 1).

    The fake-quant ranges learned in QAT give every layer output its scale, so plain conv/TSM
    models (mobilenet_v2, efficientnet_lite) need no representative dataset. Tensors *inside* a
    layer get no QAT range: HardSwish/HardSigmoid's x/6 and x+3 (mobilenet_v3), the MUL of a BN
    that follows no conv, WindowMean's mean. Those need
    `calibration` (float arrays (1, ...) or dicts by input name): it ranges only the tensors QAT
    left open, and makes the converter refuse any float op. `strict` raises ConversionError when
    the result still has float activations.

    This is tfkit.convert.tflite.convert_keras(qat_model, "int8", ...) plus the strict check:
    calibration never overrides a QAT range.

    Example:
        >>> fb = convert_qat(quantize_aware(model))  # doctest: +SKIP
    """
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras

    if calibration is not None:
        calibration = list(calibration)
        if not calibration:
            raise UsageError("convert_qat got an empty calibration set; pass clips or calibration=None")
    flatbuffer = convert_keras(qat_model, "int8", calibration=calibration)  # int8 in and out
    if strict:
        floats = TFLiteModel(flatbuffer).float_activation_count()
        if floats:
            raise ConversionError(
                f"QAT int8 model of {qat_model.name!r} still has {floats} float activation tensor(s): some "
                "tensors got no QAT range. Pass calibration=clips to convert_qat, or register an 'output' "
                "rule for the layer that computes them (register_quantize_config).")
    return flatbuffer


def inspect_int8(flatbuffer: bytes) -> QatConversion:
    """Ops, float activations and XNNPACK partitions of a converted model."""
    from tfkit.convert.parity import TFLiteModel

    m = TFLiteModel(flatbuffer)
    return QatConversion(flatbuffer, m.float_activation_count(), m.op_counts(), m.xnnpack_partitions())
