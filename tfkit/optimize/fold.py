"""Fold BatchNormalization into the Conv2D, DepthwiseConv2D or Dense layer in front of it, in the
Keras model itself.

The TFLite converter folds BN anyway, so latency does not change; what changes is what later
steps see. Clustering a kernel that a BN follows gives it 16 shared values, but the converter's
fold multiplies every output channel by its own gamma / sqrt(var), so the int8 file holds 16
values per channel, not per kernel: with one int8 scale per tensor (`convert --no-per-channel`)
they no longer line up and gzip gains little. Folded first, the clustered kernel is what runs.

A pair is folded when the BN normalizes the last axis, reads a foldable layer with no activation
of its own, and is that layer's only reader. Every other layer is left as it is.

Example:
    >>> folded = fold_batchnorm(model)      # doctest: +SKIP
    >>> folded.pairs[0]                     # doctest: +SKIP
    ('s0b0_expand_conv', 's0b0_expand_bn')
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfkit.optimize.graph import Graph, rebuild

FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense")  # layers whose output channels are the last axis


@dataclass(frozen=True)
class FoldResult:
    model: object
    pairs: tuple[tuple[str, str], ...]  # (layer, the BatchNormalization folded into it)


def _last_axis(config: dict, rank: int) -> bool:
    axis = config.get("axis", -1)
    axes = axis if isinstance(axis, list | tuple) else [axis]
    return len(axes) == 1 and int(axes[0]) in (-1, rank - 1)


def _foldable(graph: Graph, model, bn: str) -> str | None:
    node = graph.nodes[bn]
    if node.class_name != "BatchNormalization" or len(node.inputs) != 1:
        return None
    source, index = node.inputs[0]
    producer = graph.nodes.get(source)
    if producer is None or producer.class_name not in FOLDABLE or index != 0:
        return None
    if producer.config.get("activation", "linear") not in ("linear", None):
        return None
    if graph.consumers((source, 0)) != [bn] or (source, 0) in graph.outputs:
        return None
    if not _last_axis(node.config, len(model.get_layer(bn).input_shape)):
        return None
    return source


def _folded_weights(layer, bn) -> list[np.ndarray]:
    weights = layer.get_weights()
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else np.zeros(kernel.shape[-1] if layer.__class__.__name__ != "DepthwiseConv2D"
                                                        else kernel.shape[2] * kernel.shape[3], kernel.dtype)
    gamma = bn.gamma.numpy() if bn.gamma is not None else 1.0
    beta = bn.beta.numpy() if bn.beta is not None else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if layer.__class__.__name__ == "DepthwiseConv2D":  # (kh, kw, in, multiplier): channel = in * m + j
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), ((bias - bn.moving_mean.numpy()) * scale + beta).astype(np.float32)]


def fold_batchnorm(model) -> FoldResult:
    """A copy of `model` with every foldable BatchNormalization merged into the layer before it
    (that layer gains a bias); `model` is not modified. Inference outputs are unchanged."""
    graph = Graph.of(model, "BatchNormalization folding")
    pairs = [(src, bn) for bn in list(graph.order) if (src := _foldable(graph, model, bn))]
    if not pairs:
        return FoldResult(model, ())
    for src, bn in pairs:
        graph.nodes[src].config = {**graph.nodes[src].config, "use_bias": True}
        graph.replace_input((bn, 0), (src, 0))
        graph.remove([bn])
    into = dict(pairs)

    def weights(name, _new):
        return _folded_weights(model.get_layer(name), model.get_layer(into[name])) if name in into else None

    return FoldResult(rebuild(graph, model, weights, name=model.name), tuple(pairs))
