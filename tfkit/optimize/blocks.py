"""Residual-block removal driven by start-up latency (after Li, Li & Meng, J. Real-Time Image
Processing 21:116, 2024): a block's latency has a part that shrinks with its width and a fixed
part that does not (op dispatch, data movement around the convolutions). Channel pruning only
reaches the first; removing the whole block removes both.

- `find_blocks`: every identity residual block (an Add whose other input is computed from the
  shortcut by layers nothing else reads).
- `block_latency_split`: each block cut out into its own TFLite model at several widths of its
  inner channels, timed on a device (this host by default; tfkit.bench.timing), and fitted as
  fixed + slope * width.
- `remove_blocks`: the model rebuilt with the chosen blocks replaced by their shortcut.
- `plan_block_removal` (stage 1, Global Constraint): blocks ranked by latency saved per unit of
  accuracy lost when each is removed alone, removed under a latency target and an accuracy bound.
  Stage 2 (channel pruning of what remains) and fine-tuning are in tfkit.optimize.structured.

Example:
    >>> blocks = find_blocks(model)                                   # doctest: +SKIP
    >>> splits = block_latency_split(model, blocks, sample)           # doctest: +SKIP
    >>> smaller = remove_blocks(model, [b.name for b in blocks[:2]])  # doctest: +SKIP
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.graph import Graph, LayerNode, TensorRef, rebuild

TIMED_PRECISIONS = ("float32", "int8")


@dataclass(frozen=True)
class Block:
    name: str  # the Add layer
    shortcut: TensorRef
    layers: tuple[str, ...]  # the residual branch, in order (the Add not included)


def find_blocks(model, graph: Graph | None = None) -> list[Block]:
    """Identity residual blocks, in model order."""
    graph = graph or Graph.of(model, "block pruning")
    blocks = []
    for name in graph.order:
        node = graph.nodes[name]
        if node.class_name != "Add" or len(node.inputs) != 2:
            continue
        for shortcut, tip in (node.inputs, node.inputs[::-1]):
            ancestors = graph.ancestors(tip)
            if shortcut[0] not in ancestors:
                continue
            branch = [n for n in graph.order if n in ancestors and n != shortcut[0]
                      and shortcut[0] in graph.ancestors((n, 0))]
            inside = {*branch, name}
            clean = all(set(graph.consumers((n, 0))) <= inside for n in branch) and all(
                r == shortcut or r[0] in inside for n in branch for r in graph.nodes[n].inputs)
            if clean and branch:
                blocks.append(Block(name, shortcut, tuple(branch)))
                break
    return blocks


def remove_blocks(model, names, graph: Graph | None = None):
    """A copy of `model` with the named blocks (their Add layers' names) replaced by their
    shortcut; every other weight kept."""
    graph = graph or Graph.of(model, "block pruning")
    by_name = {b.name: b for b in find_blocks(model, graph)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(f"no removable residual block named {unknown[0]!r}; blocks: {', '.join(by_name) or 'none'}")
    replaced: dict[TensorRef, TensorRef] = {}  # a removed Add -> the tensor now in its place
    for name in names:
        block = by_name[name]
        shortcut = block.shortcut
        while shortcut in replaced:  # the block before it was removed too
            shortcut = replaced[shortcut]
        graph.replace_input((name, 0), shortcut)
        replaced[(name, 0)] = shortcut
        graph.remove([*block.layers, name])
    return rebuild(graph, model)


def block_model(model, block: Block, input_shape: tuple[int, ...], graph: Graph | None = None):
    """The block alone: a model from a tensor of `input_shape` (fixed batch) to the block's Add."""
    return sub_model(model, [*block.layers, block.name], block.shortcut, input_shape, graph,
                     name=f"block_{block.name}")


def sub_model(model, layers, source: TensorRef, input_shape: tuple[int, ...], graph: Graph | None = None, *,
              name: str):
    """`layers` (in model order, the last one the output) cut out of `model` with their weights,
    reading a new input of `input_shape` (fixed batch) where they read `source`."""
    graph = graph or Graph.of(model, "sub-model")
    entry = "sub_input"
    nodes = [LayerNode(**vars(graph.nodes[n])) for n in layers]  # copies: inputs are reassigned below
    for node in nodes:
        node.inputs = [(entry, 0) if r == source else r for r in node.inputs]
    sub = Graph({**graph.model_config, "input_layers": [[entry, 0, 0]]}, nodes, [(layers[-1], 0)])
    sub.insert_before(layers[0], LayerNode(entry, "InputLayer", {
        "batch_input_shape": [int(d) for d in input_shape], "dtype": "float32", "sparse": False, "ragged": False},
        [], {}))
    return rebuild(sub, model, name=name)


def tensor_values(model, refs: list[TensorRef], clips: np.ndarray) -> dict[TensorRef, list[np.ndarray]]:
    """The given tensors' values for each clip run alone (batch 1 input)."""
    from tfkit._compat.keras import keras

    refs = list(dict.fromkeys(refs))
    probe = keras().Model(model.inputs, [model.get_layer(r[0]).output for r in refs])
    found: dict[TensorRef, list[np.ndarray]] = {r: [] for r in refs}
    for clip in np.asarray(clips, np.float32):
        outs = probe(clip[None], training=False)
        for ref, out in zip(refs, outs if isinstance(outs, list | tuple) else [outs], strict=True):
            found[ref].append(np.asarray(out))
    return found


def tensor_shapes(model, refs: list[TensorRef], sample: np.ndarray) -> dict[TensorRef, tuple[int, ...]]:
    """Actual shapes (batch 1 input) of the given tensors: folded-time models have batch T inside."""
    return {r: tuple(v[0].shape) for r, v in tensor_values(model, refs, sample[:1]).items()}


def timing_inputs(model, refs: list[TensorRef], sample: np.ndarray, calibration: np.ndarray | None,
                  precision: str) -> tuple[dict, dict]:
    """What timing a piece of `model` cut out at each of `refs` needs: the tensor's shape, and
    for int8 its real values on `calibration` (default: `sample`) to calibrate the piece with."""
    refs = list(dict.fromkeys(refs))
    shapes = tensor_shapes(model, refs, sample)
    values = tensor_values(model, refs, sample if calibration is None else calibration) if precision == "int8" else {}
    return shapes, values


@dataclass(frozen=True)
class LatencySplit:
    block: str
    widths: tuple[float, ...]  # fraction of the block's inner channels kept
    latency_ms: tuple[float, ...]  # p50 at each width, the empty model's p50 subtracted
    fixed_ms: float  # intercept: what stays however thin the block gets
    width_ms: float  # slope x full width: what channel pruning can remove
    fixed_fraction: float

    @property
    def full_ms(self) -> float:
        return self.fixed_ms + self.width_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "full_ms": self.full_ms}


def fit_split(block: str, widths, latencies) -> LatencySplit:
    """Least-squares line through (width, latency); the intercept is the fixed part."""
    w, lat = np.asarray(widths, float), np.asarray(latencies, float)
    slope, intercept = np.polyfit(w, lat, 1)
    fixed = float(np.clip(intercept, 0.0, lat.max()))
    width_ms = float(max(lat.max() - fixed, 0.0)) if slope <= 0 else float(slope)
    return LatencySplit(block, tuple(float(v) for v in w), tuple(float(v) for v in lat), fixed, width_ms,
                        fixed / max(fixed + width_ms, 1e-9))


def block_latency_split(model, blocks: list[Block], sample: np.ndarray, *, widths=(1.0, 0.75, 0.5, 0.25),
                        device=None, bench_config=None, rounds: int = 3, precision: str = "float32",
                        calibration: np.ndarray | None = None,
                        progress: Callable[[str], None] | None = None) -> list[LatencySplit]:
    """Time each block alone at several inner widths on `device` (a Device or an address;
    default: this host) in
    `precision` (float32, or int8 as deployed: its kernels cost differently at each width) and
    split its latency into fixed and width-dependent parts. `sample`: one model input;
    `calibration`: model inputs whose activations calibrate each int8 block (default: `sample`).

    Same-shaped blocks are timed once. Every model is timed `rounds` times, interleaved in a
    shuffled order, and the fastest round kept: on a shared host one reading can be 2x off, and
    other load only ever adds time, so the minimum is the reading least disturbed (a median of
    three still follows two disturbed rounds, which changed which blocks went in one run)."""
    from tfkit._compat.keras import keras
    from tfkit.bench.timing import piece_config, time_flatbuffers, timing_device
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.channels import ChannelConfig, ChannelGraph, prune_channels

    if not blocks:
        return []
    if rounds < 1:
        raise UsageError(f"rounds must be >= 1, got {rounds}")
    if precision not in TIMED_PRECISIONS:
        raise UsageError(f"blocks are timed in {' or '.join(TIMED_PRECISIONS)}, got precision {precision!r}")
    device = timing_device(device)
    bench_config = bench_config or piece_config()
    graph = Graph.of(model, "block pruning")
    # each block's real input activations calibrate its int8 model
    shapes, inputs = timing_inputs(model, [b.shortcut for b in blocks], sample, calibration, precision)
    K = keras()

    def convert(sub, shortcut):
        return convert_keras(sub, precision, calibration=inputs.get(shortcut))

    models: dict[str, bytes] = {}  # what to time: "empty <shape>" and "<signature> <width>"
    plan = []  # per block: (signature, shape, widths timed)
    for block in blocks:
        shape = shapes[block.shortcut]
        signature = json.dumps([shape, [(graph.nodes[n].class_name, {k: v for k, v in graph.nodes[n].config.items()
                                                                      if k != "name"}) for n in block.layers]],
                               sort_keys=True, default=str)
        empty = f"empty {shape}"
        if empty not in models:  # the cost of invoking a model at all, subtracted below
            x = K.Input(batch_shape=shape)
            models[empty] = convert(K.Model(x, K.layers.ReLU()(x)), block.shortcut)
        timed = next((w for sig, _, w in plan if sig == signature), None)
        if timed is None:
            base = block_model(model, block, shape, graph)
            timed = tuple(widths) if ChannelGraph(base).prunable() else (1.0,)
            for width in timed:
                sub = base if width >= 1.0 else prune_channels(
                    base, ChannelConfig(ratio=1.0 - width, scope="uniform", round_to=1, min_channels=1)).model
                models[f"{signature} {width}"] = convert(sub, block.shortcut)
        plan.append((signature, shape, timed))
    fastest = time_flatbuffers(models, device, bench_config, rounds=rounds, precision=precision)
    splits, reported = [], set()
    for block, (signature, shape, timed) in zip(blocks, plan, strict=True):
        latencies = [max(fastest[f"{signature} {w}"] - fastest[f"empty {shape}"], 0.0) for w in timed]
        if progress and signature not in reported:  # once per distinct block shape
            reported.add(signature)
            progress(f"{block.name}: {', '.join(f'{v:.3f}' for v in latencies)} ms")
        splits.append(fit_split(block.name, timed if len(timed) > 1 else (1.0, 0.0),
                                latencies if len(timed) > 1 else (latencies[0], latencies[0])))
    return splits


@dataclass(frozen=True)
class BlockPlan:
    removed: tuple[str, ...]
    candidates: dict  # {block: {"accuracy_drop_alone": d, "saves_ms": ms, "score": s}}
    estimated_saving_ms: float


def plan_block_removal(model, blocks: list[Block], splits: list[LatencySplit], accuracy_of: Callable[[object], float],
                       *, target_saving_ms: float, max_drop_alone: float = 0.2,
                       max_blocks: int | None = None) -> BlockPlan:
    """Stage 1: rank blocks by latency saved (fixed + width part) per accuracy lost when each is
    removed alone (`accuracy_of(model)`, no fine-tuning), then remove the best ones until
    `target_saving_ms` is reached; a block whose removal alone costs more than `max_drop_alone`
    is kept."""
    base = accuracy_of(model)
    saves = {s.block: s.full_ms for s in splits}
    candidates = {}
    for block in blocks:
        drop = max(base - accuracy_of(remove_blocks(model, [block.name])), 0.0)
        candidates[block.name] = {"accuracy_drop_alone": round(drop, 4), "saves_ms": round(saves[block.name], 4),
                                  "score": saves[block.name] / (drop + 0.01)}
    chosen, saved = [], 0.0
    for name in sorted(candidates, key=lambda n: -candidates[n]["score"]):
        if saved >= target_saving_ms or (max_blocks is not None and len(chosen) >= max_blocks):
            break
        if candidates[name]["accuracy_drop_alone"] <= max_drop_alone:
            chosen.append(name)
            saved += saves[name]
    order = [b.name for b in blocks]
    return BlockPlan(tuple(sorted(chosen, key=order.index)), candidates, saved)
