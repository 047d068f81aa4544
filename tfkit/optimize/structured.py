"""Structured pruning that makes a model faster: residual-block removal for start-up latency,
then channel removal, then fine-tuning by distillation from the unpruned model.

Two stages, after Li, Li & Meng (2024):
1. Global Constraint (tfkit.optimize.blocks): time every residual block alone at several widths on
   the target device (`device`: an address or devices.yaml name; tfkit.bench.timing), split its latency into fixed and width-dependent parts, and remove the
   blocks that save the most latency per accuracy lost until `block_target` of the model's
   latency is gone.
2. Start-up latency reduction by width (tfkit.optimize.channels): remove `ratio` of the remaining
   channels by importance.
Then the pruned student is distilled from the original (tfkit.optimize.distill), and the linear
1x1 pairs that block removal left back to back (a projection feeding the next expansion) are
merged into one conv each (tfkit.optimize.merge; exact, so after distillation): the bottleneck
pairs whose merged kernel has more MACs only where merged is faster on the device in
`precision`.

`blocks=False` is plain channel pruning, the baseline the two-stage method is measured against.
`precision="int8"` times the blocks (and the model) as int8 flatbuffers, for a model that ships
in int8: int8 kernels keep more of their cost at small widths than float32 on some CPUs. Either
way the pruned model is timed in float32 and int8 at the end, and a note says when int8 is the
slower of the two on the device.

Example:
    >>> result = structured_prune(model, data.train, data.val, StructuredConfig(ratio=0.5))  # doctest: +SKIP
    >>> result.removed_blocks, result.val_accuracy                                           # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tfkit.errors import UsageError
from tfkit.optimize.channels import CRITERIA, ChannelConfig
from tfkit.optimize.merge import MergePolicy


@dataclass(frozen=True)
class StructuredConfig:
    ratio: float = 0.5  # channels removed (stage 2); 0 = none
    criterion: str = "l1"
    blocks: bool = True  # stage 1: remove residual blocks
    block_target: float = 0.4  # fraction of the model's latency stage 1 aims to remove
    max_drop_alone: float = 0.25  # keep a block whose removal alone costs more accuracy than this
    max_blocks: int = 0  # 0 = no limit
    epochs: int = 20  # distillation epochs (0 = none); a small student needs many: measured 0.886 at 12, 0.975 at 30
    learning_rate: float = 5e-3  # measured (quick reference, blocks + 50% channels, 26 epochs): 2e-3 -> -4.6 points, 5e-3 -> -1
    batch_size: int = 16
    temperature: float = 4.0
    alpha: float = 0.7
    widths: tuple = (1.0, 0.75, 0.5, 0.25)  # inner widths each block is timed at
    timing_runs: int = 100  # timed runs per block model (after 10 warm-up runs), 1 thread
    timing_rounds: int = 3  # each block model timed this often, interleaved; the fastest is kept
    seed: int = 0
    precision: str = "float32"  # what stage 1 times blocks in: float32 or int8 (as the model ships)
    compare_precisions: bool = True  # time the result in float32 and int8 before/after, note when int8 loses
    merge_linear: MergePolicy = MergePolicy.AUTO  # merge back-to-back linear 1x1 pairs (tfkit.optimize.merge)
    device: str = "local"  # where blocks, pairs and the model are timed: an address or a devices.yaml name
    channel_options: dict = field(default_factory=dict)  # extra ChannelConfig fields

    def __post_init__(self):
        try:
            object.__setattr__(self, "merge_linear", MergePolicy(self.merge_linear))
        except ValueError:
            raise UsageError(f"merge_linear must be one of {', '.join(m.value for m in MergePolicy)}, "
                             f"got {self.merge_linear!r}") from None
        if not 0.0 <= self.ratio < 1.0:
            raise UsageError(f"channel ratio must be in [0, 1) (0 = blocks only), got {self.ratio}")
        if self.criterion not in CRITERIA:
            raise UsageError(f"unknown channel importance {self.criterion!r}; choose one of {', '.join(CRITERIA)}")
        if not 0.0 < self.block_target < 1.0:
            raise UsageError(f"block_target must be in (0, 1), got {self.block_target}")
        if not 0.0 <= self.max_drop_alone <= 1.0:
            raise UsageError(f"max_drop_alone must be in [0, 1], got {self.max_drop_alone}")
        if self.epochs < 0 or self.max_blocks < 0 or self.timing_runs < 1 or self.timing_rounds < 1:
            raise UsageError("epochs and max_blocks must be >= 0, timing_runs and timing_rounds >= 1")
        if not self.blocks and not self.ratio:
            raise UsageError("nothing to prune: set ratio > 0 or blocks=True")
        from tfkit.optimize.blocks import TIMED_PRECISIONS

        if self.precision not in TIMED_PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(TIMED_PRECISIONS)}, got {self.precision!r}")
        if not self.widths or any(not 0.0 < w <= 1.0 for w in self.widths):
            raise UsageError(f"widths must be fractions in (0, 1], got {self.widths}")
        from tfkit.bench.timing import check_device

        check_device(self.device, "StructuredConfig")

    def channel_config(self) -> ChannelConfig:
        return ChannelConfig(ratio=self.ratio, criterion=self.criterion, **self.channel_options)

    def to_dict(self) -> dict:
        return {**asdict(self), "merge_linear": self.merge_linear.value}


@dataclass(frozen=True)
class StructuredResult:
    model: object
    val_accuracy: float
    val_accuracy_before: float
    removed_blocks: tuple
    block_candidates: dict
    latency_split: list  # LatencySplit.to_dict() per block
    channel_groups: dict
    model_latency_ms: float  # the unpruned model's p50 in `precision` on the device (stage 1's reference)
    notes: list = field(default_factory=list)
    latency_ms: dict = field(default_factory=dict)  # {"float32"|"int8": {"before": p50, "after": p50}}
    merged_pairs: tuple = ()  # LinearPair.to_dict() of each linear pair merged after distillation
    merge_timings_ms: dict = field(default_factory=dict)  # {second layer: {"pair": p50, "merged": p50}}


def _timing(config: StructuredConfig):
    from tfkit.bench.timing import piece_config

    return piece_config(config.timing_runs)


def tflite_p50(model, device=None, bench_config=None, precision: str = "float32", calibration=None,
               rounds: int = 1) -> float:
    """p50 latency of `model` converted to `precision` on `device` (default: this host), timed
    `rounds` times; the fastest round is returned (other load on the host only adds time).
    `calibration`: model inputs without the batch axis (int8 only)."""
    from tfkit.bench.timing import time_flatbuffers
    from tfkit.convert.tflite import convert_keras

    calib = None if calibration is None or precision == "float32" else [c[None] for c in calibration]
    flatbuffer = convert_keras(model, precision, calibration=calib)
    return time_flatbuffers({model.name: flatbuffer}, device, bench_config, rounds=max(rounds, 1),
                            precision=precision)[model.name]


def structured_prune(model, train, val, config: StructuredConfig = StructuredConfig(), *, device=None,
                     bench_config=None, progress: bool = True, symmetries: dict | None = None,
                     log=print, model_ms: float | None = None) -> StructuredResult:
    """Block removal (optional) + channel removal + distillation; `model` is not modified.
    `device`: where everything is timed (a Device; default: the one `config.device` names).
    `model_ms`: the unpruned model's p50 in `config.precision` on `device`, when already measured
    (a ratio sweep times it once)."""
    from tfkit.bench.timing import timing_device
    from tfkit.optimize.blocks import block_latency_split, find_blocks, plan_block_removal, remove_blocks
    from tfkit.optimize.channels import prune_channels
    from tfkit.optimize.distill import DistillConfig, distill
    from tfkit.optimize.merge import choose_merges
    from tfkit.train import data_normalization, evaluate_accuracy

    if model_ms is not None and not model_ms > 0:
        raise UsageError(f"model_ms must be a measured latency > 0 ms, got {model_ms}")
    device = timing_device(device if device is not None else config.device)  # opened once, before any work
    norm = data_normalization(train)  # what the clips were cut for: timing, accuracy and distillation agree
    data_normalization(val, norm)
    base_acc = evaluate_accuracy(model, val.x, val.y, norm)
    sample = np.asarray(val.x[:1], np.float32)
    scale, offset = norm.scale_offset()
    sample = sample * scale + offset
    calib = np.asarray(train.x[:8], np.float32) * scale + offset  # int8 timing: real activation ranges
    student, removed, candidates, splits, notes = model, (), {}, [], []
    if model_ms is None:
        model_ms = tflite_p50(model, device, bench_config or _timing(config), precision=config.precision,
                              calibration=calib, rounds=config.timing_rounds if config.blocks else 1)
    if config.blocks:
        blocks = find_blocks(model)
        if not blocks:
            notes.append("no identity residual block: stage 1 skipped")
        else:
            log(f"[structured] timing {len(blocks)} residual blocks at widths {list(config.widths)}")
            found = block_latency_split(model, blocks, sample, widths=tuple(config.widths), device=device,
                                        bench_config=bench_config or _timing(config), rounds=config.timing_rounds,
                                        precision=config.precision, calibration=calib[:4])
            for split in found:  # every block, even one sharing a same-shape timing: any removed one is listed
                log(f"[structured]   {split.block}: {', '.join(f'{v:.3f}' for v in split.latency_ms)} ms")
            splits = [s.to_dict() for s in found]
            plan = plan_block_removal(model, blocks, found, lambda m: evaluate_accuracy(m, val.x, val.y, norm),
                                      target_saving_ms=config.block_target * model_ms,
                                      max_drop_alone=config.max_drop_alone, max_blocks=config.max_blocks or None)
            removed, candidates = plan.removed, plan.candidates
            log(f"[structured] removing blocks {list(removed)} (estimated {plan.estimated_saving_ms:.3f} of "
                f"{model_ms:.3f} ms)")
            if removed:
                student = remove_blocks(model, list(removed))
    groups = {}
    if config.ratio:
        activations = None
        if config.criterion == "activation":
            activations = np.asarray(train.x[:16], np.float32) * scale + offset
        pruned = prune_channels(student, config.channel_config(), data=activations)
        student, groups = pruned.model, pruned.groups
        log(f"[structured] channels: params {pruned.params_before} -> {pruned.params_after}")
    accuracy = evaluate_accuracy(student, val.x, val.y, norm)
    if config.epochs:
        result = distill(student, model, train, val,
                         DistillConfig(temperature=config.temperature, alpha=config.alpha, epochs=config.epochs,
                                       learning_rate=config.learning_rate, batch_size=config.batch_size,
                                       seed=config.seed),
                         progress=progress, symmetries=symmetries)
        accuracy = result.val_accuracy
    if student is model:
        raise UsageError("structured pruning changed nothing (no block removed and ratio=0)")
    merged = choose_merges(student, config.merge_linear, sample=sample, precision=config.precision,
                           calibration=calib[:4], device=device, bench_config=bench_config or _timing(config),
                           rounds=config.timing_rounds)
    if merged.pairs:
        student = merged.model
        log(f"[structured] merged linear 1x1 pairs: {', '.join(f'{p.first} -> {p.second}' for p in merged.pairs)}")
    latency = {}
    if config.compare_precisions:
        latency = compare_precisions(model, student, device, bench_config or _timing(config), calib,
                                     rounds=config.timing_rounds, known={config.precision: model_ms})
        notes.extend(precision_notes(latency))
    for note in notes:
        log(f"[structured] note: {note}")
    return StructuredResult(student, accuracy, base_acc, removed, candidates, splits, groups, model_ms, notes,
                            latency, tuple(p.to_dict() for p in merged.pairs), merged.timings_ms)


def compare_precisions(before, after, device, bench_config, calibration, *, rounds: int = 1,
                       known: dict | None = None) -> dict:
    """p50 of both models in float32 and int8 on `device`: {precision: {"before", "after"}}.
    `known`: p50s of `before` already measured, by precision."""
    known = known or {}
    return {precision: {
        "before": known.get(precision) or tflite_p50(before, device, bench_config, precision, calibration, rounds),
        "after": tflite_p50(after, device, bench_config, precision, calibration, rounds)}
        for precision in ("float32", "int8")}


def precision_notes(latency: dict) -> list[str]:
    """What a user deploying int8 should know: whether int8 pays on this device, before and after."""
    notes = []
    f32, i8 = latency["float32"], latency["int8"]
    if i8["after"] > f32["after"] and i8["before"] > f32["before"]:
        notes.append(f"int8 is slower than float32 on this device before pruning ({i8['before']:.3f} vs "
                     f"{f32['before']:.3f} ms) and after ({i8['after']:.3f} vs {f32['after']:.3f} ms): "
                     "its int8 kernels do not pay here; ship float32 to this device")
    elif i8["after"] > f32["after"]:
        notes.append(f"int8 is slower than float32 for the pruned model on this device ({i8['after']:.3f} vs "
                     f"{f32['after']:.3f} ms): its int8 kernels at these widths cost more than they save; "
                     "ship float32 here, or prune fewer channels (--ratio) if it must be int8")
    cut_f32, cut_i8 = 1 - f32["after"] / f32["before"], 1 - i8["after"] / i8["before"]
    if cut_i8 < cut_f32 - 0.05:
        notes.append(f"pruning cut float32 latency by {cut_f32:.0%} but int8 only by {cut_i8:.0%}: "
                     "the int8 kernels keep more of their cost at small widths on this device")
    return notes
