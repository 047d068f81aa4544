"""Structured channel pruning that physically removes channels from a Functional tf_keras conv net.

Channels are pruned in *groups*: every tensor whose channels must stay in step shares one group —
the outputs of the convolutions feeding a residual Add, a depthwise conv and the BN after it, the
squeeze-excite gate and the features it scales. Groups come from one table of layer rules
(`CHANNEL_RULES`), not from name patterns, so user models (keras.applications MobileNetV2,
ResNet50, EfficientNetB0 built with weights=None) prune like zoo models. A group that reaches a
model input or output, a Flatten, a grouped conv or a layer with no rule keeps all its channels.

Importance per channel, summed over a group's layers (each normalized by its own mean): "l1" or
"l2" norm of the producing kernels' output filters, "bn" (|gamma| of the group's BatchNorms), or
"activation" (mean |activation| on sample inputs: data-driven). Ratios are global (the least
important channels anywhere) or uniform (the same fraction of every group), with per-layer
overrides. The pruned model is rebuilt from the kept weights; fine-tune it afterwards.

Example:
    >>> result = prune_channels(model, ChannelConfig(ratio=0.5, criterion="bn"))   # doctest: +SKIP
    >>> result.params_before, result.params_after                                  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.graph import Graph, TensorRef, rebuild

ELEMENTWISE, CHANNELWISE, MERGE, CONCAT, CONV, DEPTHWISE, RESHAPE, FIXED = (
    "elementwise", "channelwise", "merge", "concat", "conv", "depthwise", "reshape", "fixed")
CHANNEL_RULES: dict[str, str] = {
    **dict.fromkeys(("ReLU", "Activation", "Dropout", "SpatialDropout2D", "GaussianNoise", "ZeroPadding2D",
                     "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                     "GlobalAveragePooling1D", "GlobalMaxPooling1D", "UpSampling2D", "Cropping2D", "LeakyReLU",
                     "ELU", "ActivityRegularization", "HardSwish", "HardSigmoid", "TemporalShift", "FoldTime",
                     "UnfoldTime", "TimeToRows", "RowsToTime"), ELEMENTWISE),
    **dict.fromkeys(("BatchNormalization", "LayerNormalization", "Normalization", "PReLU"), CHANNELWISE),
    **dict.fromkeys(("Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"), MERGE),
    "Concatenate": CONCAT,
    **dict.fromkeys(("Conv2D", "Conv1D", "Dense"), CONV),
    "DepthwiseConv2D": DEPTHWISE,
    "Reshape": RESHAPE,
    **dict.fromkeys(("InputLayer", "Flatten", "Softmax", "Conv2DTranspose", "Rescaling", "Resizing", "FrameStack"),
                    FIXED),
}
CRITERIA = ("l1", "l2", "bn", "activation")
SCOPES = ("global", "uniform")


def register_channel_rule(class_name: str, rule: str) -> None:
    """Tell channel pruning how a layer class treats channels: "elementwise" (keeps them, no
    weights), "channelwise" (keeps them, per-channel weights on the last axis) or "fixed".

    Example:
        >>> register_channel_rule("MyGate", "elementwise")
    """
    if rule not in (ELEMENTWISE, CHANNELWISE, FIXED):
        raise UsageError(f"channel rule must be elementwise, channelwise or fixed, got {rule!r}")
    CHANNEL_RULES[class_name] = rule


@dataclass(frozen=True)
class ChannelConfig:
    ratio: float = 0.5  # fraction of prunable channels to remove
    criterion: str = "l1"
    scope: str = "global"  # global: least important anywhere; uniform: the same fraction per group
    layer_ratios: dict = field(default_factory=dict)  # {producing layer name: ratio} overrides
    round_to: int = 8  # kept channels per group rounded up to a multiple (SIMD-friendly widths, int8 above all)
    min_channels: int = 8  # groups never shrink below this
    max_group_ratio: float = 0.9  # global scope: no group loses more than this fraction

    def __post_init__(self):
        for name, r in [("ratio", self.ratio), *self.layer_ratios.items()]:
            if not 0.0 < float(r) < 1.0:
                raise UsageError(f"channel pruning ratio for {name!r} must be in (0, 1), got {r}")
        if self.criterion not in CRITERIA:
            raise UsageError(f"unknown channel importance {self.criterion!r}; choose one of {', '.join(CRITERIA)}")
        if self.scope not in SCOPES:
            raise UsageError(f"unknown pruning scope {self.scope!r}; choose one of {', '.join(SCOPES)}")
        if self.round_to < 1 or self.min_channels < 1 or not 0.0 < self.max_group_ratio < 1.0:
            raise UsageError("round_to and min_channels must be >= 1 and max_group_ratio in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Group:
    size: int
    fixed: list[str] = field(default_factory=list)  # why it cannot shrink
    producers: list[str] = field(default_factory=list)  # layers whose output filters are its channels
    channelwise: list[str] = field(default_factory=list)  # BN, depthwise... on its tensors
    tensors: list[TensorRef] = field(default_factory=list)


class ChannelGraph:
    """Which channels of which tensors must be pruned together (union-find over groups)."""

    def __init__(self, model, graph: Graph | None = None):
        self.model, self.graph = model, graph or Graph.of(model, "channel pruning")
        self.parent: list[int] = []
        self.groups: list[Group] = []
        self.layouts: dict[TensorRef, list[tuple[int, int]]] = {}  # tensor -> [(group, channels)]
        self.in_layout: dict[str, list[tuple[int, int]]] = {}  # layer -> layout of its (first) input
        self.reshapes: dict[str, int] = {}  # Reshape layer -> group of its last axis
        for name in self.graph.order:
            self._visit(name)
        for ref in self.graph.outputs:
            self._fix(self.layouts[ref], "a model output")

    # --- union-find ----------------------------------------------------------------------------
    def _new(self, size: int, why: str = "") -> int:
        self.parent.append(len(self.parent))
        self.groups.append(Group(size, [why] if why else []))
        return len(self.parent) - 1

    def root(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def _union(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a != b:
            self.parent[b] = a
            ga, gb = self.groups[a], self.groups[b]
            for key in ("fixed", "producers", "channelwise", "tensors"):
                getattr(ga, key).extend(getattr(gb, key))

    def _fix(self, layout, why: str) -> None:
        for g, _ in layout:
            self.groups[self.root(g)].fixed.append(why)

    # --- layer rules ---------------------------------------------------------------------------
    def _visit(self, name: str) -> None:
        node = self.graph.nodes[name]
        layer = self.model.get_layer(name)
        rule = CHANNEL_RULES.get(node.class_name)
        ins = [self.layouts[r] for r in node.inputs]
        why = f"{name} ({node.class_name})"
        if rule is None:
            raise UsageError(f"channel pruning cannot follow layer {name!r} of class {node.class_name}: it has no "
                             "channel rule. Register one with tfkit.optimize.channels.register_channel_rule("
                             f"{node.class_name!r}, 'elementwise' | 'channelwise' | 'fixed').")
        outputs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
        if len(outputs) != 1:
            raise UsageError(f"layer {name!r} ({node.class_name}) has {len(outputs)} outputs; channel pruning "
                             "follows single-output layers (prune the clip model, not the streaming one)")
        channels = int(outputs[0].shape[-1])
        if ins:
            self.in_layout[name] = ins[0]
        if node.class_name == "Conv2D" and int(node.config.get("groups", 1)) != 1:
            rule = FIXED
        if node.class_name == "DepthwiseConv2D" and int(node.config.get("depth_multiplier", 1)) != 1:
            rule = FIXED
        if node.class_name == "Rescaling" and np.ndim(node.config.get("scale", 1.0)) == 0 \
                and np.ndim(node.config.get("offset", 0.0)) == 0:
            rule = ELEMENTWISE
        if rule == FIXED:
            for layout in ins:
                self._fix(layout, why)
            out = [(self._new(channels, why), channels)]
        elif rule == CONV:
            out = [(self._new(channels), channels)]
            self.groups[out[0][0]].producers.append(name)
        elif rule in (ELEMENTWISE, CHANNELWISE, DEPTHWISE):
            out = ins[0]
            if rule != ELEMENTWISE:
                for g, _ in out:
                    self.groups[self.root(g)].channelwise.append(name)
        elif rule == RESHAPE:
            out = ins[0]
            if int(layer.input.shape[-1]) != channels or len(out) != 1:
                self._fix(ins[0], why)
                out = [(self._new(channels, why), channels)]
            else:
                self.reshapes[name] = out[0][0]
        elif rule == CONCAT and int(node.config.get("axis", -1)) in (-1, len(outputs[0].shape) - 1):
            out = [seg for layout in ins for seg in layout]
        else:  # MERGE, or CONCAT along another axis: every input's channels line up
            wide = [layout for layout in ins if sum(n for _, n in layout) == channels]
            out = wide[0]
            for layout in wide[1:]:
                if [n for _, n in layout] == [n for _, n in out]:
                    for (a, _), (b, _) in zip(out, layout, strict=True):
                        self._union(a, b)
                else:
                    self._fix(layout, why)
                    self._fix(out, why)
        self.layouts[(name, 0)] = out
        for g, _ in out:
            if rule != ELEMENTWISE:
                self.groups[self.root(g)].tensors.append((name, 0))

    # --- queries -------------------------------------------------------------------------------
    def roots(self) -> list[int]:
        return sorted({self.root(g) for g in range(len(self.parent))})

    def prunable(self) -> list[int]:
        return [g for g in self.roots() if not self.groups[g].fixed and self.groups[g].producers]

    def index(self, layout, keep: dict[int, np.ndarray]) -> np.ndarray:
        parts, offset = [], 0
        for g, n in layout:
            kept = keep.get(self.root(g))
            parts.append(offset + (np.arange(n) if kept is None else kept))
            offset += n
        return np.concatenate(parts) if parts else np.arange(0)

    def label(self, g: int) -> str:
        return self.groups[g].producers[0] if self.groups[g].producers else f"group{g}"


# --- importance ----------------------------------------------------------------------------------
def _norm(v: np.ndarray) -> np.ndarray:
    v = np.abs(np.asarray(v, np.float64))
    return v / max(float(v.mean()), 1e-12)


def _filter_norms(layer, order: int) -> np.ndarray:
    kernel = np.asarray(layer.get_weights()[0])
    flat = kernel.reshape(-1, kernel.shape[-1])
    return np.sum(np.abs(flat), 0) if order == 1 else np.sqrt(np.sum(flat ** 2, 0))


def importance(cg: ChannelGraph, criterion: str, data: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Per prunable group, one score per channel (larger = keep)."""
    groups = cg.prunable()
    scores = {g: np.zeros(cg.groups[g].size) for g in groups}
    if criterion == "activation":
        if data is None:
            raise UsageError("the 'activation' criterion is data-driven: pass sample inputs (data=...)")
        from tfkit._compat.keras import keras

        refs = sorted({r for g in groups for r in cg.groups[g].tensors})
        probe = keras().Model(cg.model.inputs, [cg.model.get_layer(r[0]).output for r in refs])
        outs = probe.predict(np.asarray(data, np.float32), batch_size=8, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        for ref, value in zip(refs, outs, strict=True):
            mean = np.mean(np.abs(value.reshape(-1, value.shape[-1])), 0)
            offset = 0
            for g, n in cg.layouts[ref]:
                if cg.root(g) in scores:
                    scores[cg.root(g)] += _norm(mean[offset:offset + n])
                offset += n
        return scores
    for g in groups:
        grp = cg.groups[g]
        if criterion == "bn":
            bns = [n for n in grp.channelwise if cg.graph.nodes[n].class_name == "BatchNormalization"]
            for name in bns:
                scores[g] += _norm(cg.model.get_layer(name).get_weights()[0])
            if bns:
                continue
        for name in grp.producers:  # l1 / l2, and bn's fallback for a group without BatchNorm
            scores[g] += _norm(_filter_norms(cg.model.get_layer(name), 2 if criterion == "l2" else 1))
    return scores


def _kept_count(size: int, ratio: float, config: ChannelConfig) -> int:
    keep = int(np.ceil(size * (1.0 - ratio) / config.round_to) * config.round_to)
    return int(min(size, max(keep, config.min_channels)))


def select_channels(cg: ChannelGraph, scores: dict[int, np.ndarray], config: ChannelConfig) -> dict[int, np.ndarray]:
    """Sorted kept channel indices per prunable group."""
    counts = {}
    overrides = {}
    for layer_name, r in config.layer_ratios.items():
        owners = [g for g in scores if layer_name in cg.groups[g].producers]
        if not owners:
            raise UsageError(f"layer_ratios names {layer_name!r}, which produces no prunable channel group; "
                             f"prunable: {', '.join(sorted(cg.label(g) for g in scores))}")
        overrides[owners[0]] = float(r)
    if config.scope == "global":
        free = [g for g in scores if g not in overrides]
        if free:  # rank every channel by its group-normalized score; ties keep their order
            pooled = np.concatenate([scores[g] / max(scores[g].mean(), 1e-12) for g in free])
            owner = np.concatenate([np.full(len(scores[g]), g) for g in free])
            lowest = owner[np.argsort(pooled, kind="stable")[:round(config.ratio * len(pooled))]]
            for g in free:
                dropped = float(np.sum(lowest == g)) / len(scores[g])
                counts[g] = _kept_count(len(scores[g]), min(dropped, config.max_group_ratio), config) \
                    if dropped else len(scores[g])
    else:
        counts = {g: _kept_count(len(s), config.ratio, config) for g, s in scores.items() if g not in overrides}
    counts.update({g: _kept_count(len(scores[g]), r, config) for g, r in overrides.items()})
    return {g: np.sort(np.argsort(-scores[g], kind="stable")[:counts[g]]) for g in scores}


# --- surgery -------------------------------------------------------------------------------------
def _sliced(cg: ChannelGraph, keep: dict[int, np.ndarray], name: str, layer) -> list | None:
    rule = CHANNEL_RULES.get(cg.graph.nodes[name].class_name)
    old = cg.model.get_layer(name)
    weights = old.get_weights()
    if not weights or name not in cg.in_layout:
        return None
    in_idx = cg.index(cg.in_layout[name], keep)
    out_idx = cg.index(cg.layouts[(name, 0)], keep)
    size = sum(n for _, n in cg.in_layout[name])
    if rule == CONV and size == weights[0].shape[-2]:
        return [np.take(np.take(weights[0], in_idx, -2), out_idx, -1), *[np.take(b, out_idx, -1) for b in weights[1:]]]
    if rule == DEPTHWISE and size == weights[0].shape[-2]:
        return [np.take(weights[0], in_idx, -2), *[np.take(b, in_idx, -1) for b in weights[1:]]]
    if rule == CHANNELWISE:
        return [np.take(w, in_idx, -1) if w.ndim and w.shape[-1] == size else w for w in weights]
    return None


def apply_channels(cg: ChannelGraph, keep: dict[int, np.ndarray], name: str | None = None):
    """The model rebuilt with only the `keep` channels of each group; weights sliced."""
    graph = Graph.of(cg.model, "channel pruning")
    for g, kept in keep.items():
        for producer in cg.groups[g].producers:
            config = graph.nodes[producer].config
            config["units" if "units" in config else "filters"] = len(kept)
    for reshape, g in cg.reshapes.items():
        kept = keep.get(cg.root(g))
        if kept is not None:
            target = list(graph.nodes[reshape].config["target_shape"])
            graph.nodes[reshape].config["target_shape"] = [*target[:-1], len(kept)]
    return rebuild(graph, cg.model, lambda n, layer: _sliced(cg, keep, n, layer), name=name or cg.model.name)


@dataclass(frozen=True)
class ChannelResult:
    model: object
    groups: dict  # {label: {"kept": n, "total": n}} for every pruned group
    params_before: int
    params_after: int
    fixed: dict  # {label: why it kept every channel}


def prune_channels(model, config: ChannelConfig = ChannelConfig(), *, data: np.ndarray | None = None) -> ChannelResult:
    """A smaller copy of `model` with the least important channel groups' channels removed (not
    fine-tuned). `data`: sample model inputs (float, normalized), needed by criterion "activation"."""
    cg = ChannelGraph(model)
    if not cg.prunable():
        raise UsageError(f"{model.name!r} has no channel group that can shrink (every group reaches an input, "
                         "an output or a fixed layer)")
    keep = select_channels(cg, importance(cg, config.criterion, data), config)
    pruned = apply_channels(cg, keep)
    groups = {cg.label(g): {"kept": len(k), "total": cg.groups[g].size} for g, k in keep.items()}
    fixed = {cg.label(g): cg.groups[g].fixed[0] for g in cg.roots() if cg.groups[g].fixed and cg.groups[g].producers}
    return ChannelResult(pruned, groups, int(model.count_params()), int(pruned.count_params()), fixed)
