"""Merge a linear 1x1 convolution (or Dense layer) into the 1x1 convolution (Dense layer) that
reads it: one op fewer, the same outputs.

MobileNet-style blocks end in a linear projection (1x1 conv + BatchNormalization, no
activation). Inside a stage the projection feeds a residual Add; once block removal takes the
blocks after it away, it feeds the next stage's 1x1 expansion directly, and two 1x1 convolutions
with nothing nonlinear between them are one: W = W1 @ W2, b = b1 @ W2 + b2 (the BatchNorm between
them folded into W1 first). This is where block removal's start-up saving continues: each merge
removes an op's fixed cost, which on int8 XNNPACK is most of a thin conv's cost (measured on a
Xeon with AMX: an int8 1x1 conv over 2048 pixels takes 0.036 ms from 8 to 64 channels alike,
where float32 takes 0.006-0.098 ms).

Where the middle width is the smallest of the three (a bottleneck), the merged kernel has more
MACs than the pair. `MergePolicy.AUTO` merges every pair that adds no MACs, and times each other
pair against its merged form on the device, in the precision the model ships in, keeping the
faster; `ALL` merges every pair, `OFF` none.

Example:
    >>> pairs = find_linear_pairs(model)                       # doctest: +SKIP
    >>> merged = merge_linear(model, pairs).model              # doctest: +SKIP
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.graph import Graph, TensorRef, rebuild


class MergePolicy(str, enum.Enum):
    AUTO = "auto"  # pairs that add no MACs; the others when timed faster on the device
    ALL = "all"
    OFF = "off"


@dataclass(frozen=True)
class LinearPair:
    first: str  # the linear layer (no activation), removed
    second: str  # the layer reading it, which takes the merged kernel
    batchnorm: str | None  # a BatchNormalization between them, folded in
    source: TensorRef  # what `first` reads: the merged layer reads it instead
    macs_pair: int  # multiply-adds per position (pixel, or row for Dense), both layers
    macs_merged: int

    def to_dict(self) -> dict:
        return {"first": self.first, "second": self.second, "batchnorm": self.batchnorm,
                "macs_pair": self.macs_pair, "macs_merged": self.macs_merged}


@dataclass(frozen=True)
class MergeResult:
    model: object
    pairs: tuple[LinearPair, ...]  # the pairs merged
    timings_ms: dict = field(default_factory=dict)  # {second: {"pair": p50, "merged": p50}} for timed pairs


def _pointwise(node) -> bool:
    """A Dense layer, or a Conv2D that is a per-pixel matrix product (1x1, stride 1, no groups)."""
    config = node.config
    if node.class_name == "Dense":
        return True
    return (node.class_name == "Conv2D" and tuple(config.get("kernel_size", ())) == (1, 1)
            and tuple(config.get("strides", (1, 1))) == (1, 1) and tuple(config.get("dilation_rate", (1, 1))) == (1, 1)
            and int(config.get("groups", 1)) == 1 and config.get("data_format", "channels_last") == "channels_last")


def _only_reader(graph: Graph, name: str) -> str | None:
    readers = graph.consumers((name, 0))
    if len(readers) != 1 or (name, 0) in graph.outputs:
        return None
    return readers[0]


def find_linear_pairs(model, graph: Graph | None = None) -> list[LinearPair]:
    """Every (linear pointwise layer -> [BatchNormalization ->] pointwise layer of the same kind)
    chain where each tensor between them has that one reader; a layer is in one pair at most."""
    from tfkit.optimize.fold import _foldable

    graph = graph or Graph.of(model, "linear merging")
    pairs, used = [], set()
    for name in graph.order:
        first = graph.nodes[name]
        if name in used or not _pointwise(first) or first.config.get("activation", "linear") not in ("linear", None):
            continue
        reader, batchnorm = _only_reader(graph, name), None
        if reader is not None and graph.nodes[reader].class_name == "BatchNormalization":
            if _foldable(graph, model, reader) != name:
                continue
            batchnorm, reader = reader, _only_reader(graph, reader)
        if reader is None or reader in used:
            continue
        second = graph.nodes[reader]
        if second.class_name != first.class_name or not _pointwise(second) or len(second.inputs) != 1:
            continue
        kernel_in = model.get_layer(name).get_weights()[0]
        kernel_out = model.get_layer(reader).get_weights()[0]
        n_in, mid, n_out = kernel_in.shape[-2], kernel_in.shape[-1], kernel_out.shape[-1]
        pairs.append(LinearPair(name, reader, batchnorm, first.inputs[0], int(n_in * mid + mid * n_out),
                                int(n_in * n_out)))
        used.update((name, reader))
    return pairs


def _merged_weights(model, pair: LinearPair) -> list[np.ndarray]:
    from tfkit.optimize.fold import _folded_weights

    first, second = model.get_layer(pair.first), model.get_layer(pair.second)
    if pair.batchnorm:
        k1, b1 = _folded_weights(first, model.get_layer(pair.batchnorm))
    else:
        w = first.get_weights()
        k1, b1 = w[0], (w[1] if len(w) > 1 else np.zeros(w[0].shape[-1], w[0].dtype))
    w = second.get_weights()
    k2, b2 = w[0], (w[1] if len(w) > 1 else np.zeros(w[0].shape[-1], w[0].dtype))
    lead = k1.shape[:-2]  # (1, 1) for a 1x1 conv, () for Dense
    m1, m2 = k1.reshape(k1.shape[-2:]).astype(np.float64), k2.reshape(k2.shape[-2:]).astype(np.float64)
    kernel = (m1 @ m2).reshape(*lead, m1.shape[0], m2.shape[1])
    return [kernel.astype(np.float32), (b1.astype(np.float64) @ m2 + b2).astype(np.float32)]


def merge_linear(model, pairs=None) -> MergeResult:
    """A copy of `model` with each pair (default: every one `find_linear_pairs` finds) merged into
    its second layer, which keeps its name and gains a bias; `model` is not modified."""
    graph = Graph.of(model, "linear merging")
    found = {p.second: p for p in find_linear_pairs(model, graph)}
    pairs = list(found.values()) if pairs is None else list(pairs)
    for pair in pairs:
        if found.get(pair.second) != pair:
            raise UsageError(f"{pair.first!r} -> {pair.second!r} is not a mergeable linear pair of {model.name!r}; "
                             f"pairs: {', '.join(f'{p.first} -> {p.second}' for p in found.values()) or 'none'}")
    if not pairs:
        return MergeResult(model, ())
    weights = {}
    for pair in pairs:
        weights[pair.second] = _merged_weights(model, pair)
        node = graph.nodes[pair.second]
        node.config = {**node.config, "use_bias": True}
        node.inputs = [pair.source]
        graph.remove([pair.first, *([pair.batchnorm] if pair.batchnorm else [])])
    return MergeResult(rebuild(graph, model, lambda name, _layer: weights.get(name), name=model.name), tuple(pairs))


def choose_merges(model, policy: MergePolicy | str = MergePolicy.AUTO, *, sample: np.ndarray | None = None,
                  precision: str = "float32", calibration: np.ndarray | None = None, device=None,
                  bench_config=None, rounds: int = 3) -> MergeResult:
    """`merge_linear` under `policy`. AUTO times each pair that adds MACs, alone, against its
    merged form in `precision` on `device` (a Device or an address; default: this host);
    `sample`: one model input (needed then), `calibration`: model inputs whose activations
    calibrate the int8 timing models."""
    from tfkit.bench.timing import piece_config, time_flatbuffers, timing_device
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize import blocks

    try:
        policy = MergePolicy(policy)
    except ValueError:
        raise UsageError(f"merge policy must be one of {', '.join(m.value for m in MergePolicy)}, "
                         f"got {policy!r}") from None
    pairs = find_linear_pairs(model) if policy is not MergePolicy.OFF else []
    timed = [p for p in pairs if p.macs_merged > p.macs_pair] if policy is MergePolicy.AUTO else []
    if not timed:
        return merge_linear(model, pairs)
    if sample is None:
        raise UsageError("choose_merges(policy='auto') needs `sample` (one model input) to time pairs that add MACs")
    if precision not in blocks.TIMED_PRECISIONS:
        raise UsageError(f"pairs are timed in {' or '.join(blocks.TIMED_PRECISIONS)}, got precision {precision!r}")
    device = timing_device(device)  # before any model is cut out: a bad address fails first
    graph = Graph.of(model, "linear merging")
    shapes, inputs = blocks.timing_inputs(model, [p.source for p in timed], sample, calibration, precision)
    flatbuffers = {}
    for pair in timed:
        layers = [pair.first, *([pair.batchnorm] if pair.batchnorm else []), pair.second]
        alone = blocks.sub_model(model, layers, pair.source, shapes[pair.source], graph, name=f"pair_{pair.second}")
        for form, sub in (("pair", alone), ("merged", merge_linear(alone).model)):
            flatbuffers[f"{form} {pair.second}"] = convert_keras(sub, precision, calibration=inputs.get(pair.source))
    p50 = time_flatbuffers(flatbuffers, device, bench_config or piece_config(), rounds=rounds, precision=precision)
    timings = {p.second: {"pair": p50[f"pair {p.second}"], "merged": p50[f"merged {p.second}"]} for p in timed}
    chosen = [p for p in pairs if p not in timed or timings[p.second]["merged"] < timings[p.second]["pair"]]
    result = merge_linear(model, chosen)
    return MergeResult(result.model, result.pairs, timings)
