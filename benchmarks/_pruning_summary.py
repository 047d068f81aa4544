"""The pure arithmetic of benchmarks/pruning.py, apart from TensorFlow so it can be unit tested on
synthetic rows (tests/unit/test_pruning_summary.py): the channel-only comparator sweep that brackets
channel + block's validation accuracy, the interpolation to that accuracy, cuts, leads and goals.

A comparator "at matched accuracy" is two measured channel-only models, one at least as accurate as
channel + block on the validation set and one less accurate, found by widening the ratio in both
directions and then bisecting between them; its latency is interpolated between the two, linearly
in validation accuracy. Without such a pair the lead is not reported (None and a reason): the old
fallback (the most accurate ratio tried) was the slowest model and flattered channel + block.

    >>> s = sweep(lambda r: 1.0 - r / 2, 0.6, SweepConfig(start=0.75))
    >>> s.bracket.above.ratio <= 0.8 < s.bracket.below.ratio
    True
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

# The goals of the earlier pruning issue, in the form docs/results.md tests them (benchmarks/results_page.py).
GOALS = {
    "latency_cut_channel_block": ">= 0.7",
    "latency_cut_channel_block_int8": ">= 0.7",
    "accuracy_drop_channel_block": "<= 0.02",
    "startup_cut_block": ">= 0.30",
    "sparse_int8_gzip_reduction": ">= 6",
    "sparse_int8_accuracy_drop": "<= 0.01",
    "lead_at_matched_accuracy_float32": ">= 0.15",
    "lead_at_matched_accuracy_int8": ">= 0.15",
}


@dataclass(frozen=True)
class SweepConfig:
    """Where the channel-only sweep starts, the ratios it may try, and when it stops refining."""

    start: float = 0.75
    lowest: float = 0.125  # least aggressive ratio allowed (0 would be no channel pruning at all)
    highest: float = 0.9375  # most aggressive: one channel in 16 left
    tolerance: float = 0.005  # a bracket end within half a point of the target ends the refinement
    min_width: float = 1 / 64  # closer ratios remove the same channels from layers this narrow
    max_width: float = 1 / 8  # and refine until the ends are this close: a latency interpolated across
    # a wider gap (50% to 75%: 1.6 against 1.0 ms at full size) leans on a straight line too long
    max_points: int = 7  # each point is a pruning + 42-epoch distillation


@dataclass(frozen=True)
class SweepPoint:
    ratio: float
    val_accuracy: float
    step: str  # "start", "widen" or "bisect": how the sweep came to try it


@dataclass(frozen=True)
class Bracket:
    above: SweepPoint  # val accuracy >= target (the less aggressive end)
    below: SweepPoint  # val accuracy < target (the more aggressive end)


@dataclass(frozen=True)
class Sweep:
    target: float
    points: tuple[SweepPoint, ...]
    bracket: Bracket | None
    reason: str | None  # why there is no bracket, else None (short: docs/results.md shows up to 80 characters)
    within_tolerance: bool  # a bracket end lies within `tolerance` of the target


def sweep(evaluate: Callable[[float], float], target: float, config: SweepConfig = SweepConfig()) -> Sweep:
    """Try channel ratios with `evaluate(ratio) -> validation accuracy` until one is at least as
    accurate as `target` and a more aggressive one is less accurate, then bisect between the two
    (each midpoint replaces the end on its side of the target) until an end is within
    `config.tolerance` of the target and the ends at most `max_width` apart, or they are
    `min_width` apart, or `max_points` ran out.
    Widening halves the kept channels (more aggressive) or doubles them (less), clipped to
    [lowest, highest]; accuracy that is not monotone in the ratio only moves the ends inward."""
    points: list[SweepPoint] = []
    above: SweepPoint | None = None
    below: SweepPoint | None = None

    def probe(ratio: float, step: str) -> None:
        nonlocal above, below
        point = SweepPoint(round(ratio, 6), float(evaluate(round(ratio, 6))), step)
        points.append(point)
        if point.val_accuracy >= target:
            above = point
        else:
            below = point

    def close(end: SweepPoint | None) -> bool:
        return end is not None and abs(end.val_accuracy - target) <= config.tolerance

    probe(min(max(config.start, config.lowest), config.highest), "start")
    reason = None
    while above is None or below is None:
        if len(points) >= config.max_points:
            reason = f"no bracket within {config.max_points} points"
            break
        if below is None:  # everything so far reaches the target: prune more
            if above.ratio >= config.highest:
                reason = f"most aggressive ratio allowed ({config.highest:g}) still reaches it: {above.val_accuracy:.4f}"
                break
            probe(min(1.0 - (1.0 - above.ratio) / 2.0, config.highest), "widen")
        else:  # nothing reaches it yet: prune less
            if below.ratio <= config.lowest:
                reason = f"least aggressive ratio allowed ({config.lowest:g}) stays below it: {below.val_accuracy:.4f}"
                break
            probe(max(1.0 - 2.0 * (1.0 - below.ratio), config.lowest), "widen")
    if reason is not None:
        return Sweep(target, tuple(points), None, reason, False)
    while (len(points) < config.max_points and below.ratio - above.ratio > config.min_width
           and not ((close(above) or close(below)) and below.ratio - above.ratio <= config.max_width)):
        probe((above.ratio + below.ratio) / 2.0, "bisect")
    return Sweep(target, tuple(points), Bracket(above, below), None, close(above) or close(below))


def matched_weight(above_accuracy: float, below_accuracy: float, target: float) -> float:
    """Where `target` lies between the two ends, linearly in accuracy: 1 at `above`, 0 at `below`."""
    if not below_accuracy < target <= above_accuracy:
        raise ValueError(f"target {target} is not bracketed by ({below_accuracy}, {above_accuracy}]")
    return (target - below_accuracy) / (above_accuracy - below_accuracy)


def interpolate(above: float, below: float, weight: float) -> float:
    """A quantity (latency, ratio, test accuracy) at the matched point: `weight` of the way from `below`."""
    return below + weight * (above - below)


def cut(reference_ms: float, ms: float) -> float:
    """Latency cut as a fraction of the reference: 0.75 = a quarter of its time."""
    return 1.0 - ms / reference_ms


def lead(reference_ms: float, channel_block_ms: float, comparator_ms: float) -> float:
    """Channel + block's cut minus the comparator's, in fractions of the reference's latency."""
    return cut(reference_ms, channel_block_ms) - cut(reference_ms, comparator_ms)


def _bracket_point(point: SweepPoint, row: dict) -> dict:
    return {"ratio": point.ratio, "val_accuracy": point.val_accuracy, "step": point.step,
            "test_accuracy": row["float32"]["accuracy"],
            "latency_ms": row["float32"]["p50_ms"], "latency_ms_int8": row["int8"]["p50_ms"],
            "val_accuracy_int8": row["int8"].get("val_accuracy"), "test_accuracy_int8": row["int8"]["accuracy"]}


def comparator_summary(result: Sweep, rows: dict, reference: dict, channel_block: dict) -> dict:
    """The channel-only keys of the result: `rows[ratio]` and `reference` / `channel_block` are
    benchmark rows ({precision: {p50_ms, accuracy (test), val_accuracy}}), latencies measured.
    With no bracket every matched figure is None and `channel_only_bracket_reason` says why."""
    out = {"channel_only_target_val_accuracy": result.target,
           "channel_only_sweep_points": [asdict(p) for p in result.points],
           "channel_only_within_tolerance": result.within_tolerance}
    if result.bracket is None:
        out.update({"channel_only_bracket": None, "channel_only_bracket_reason": result.reason,
                    "lead_at_matched_accuracy_float32": None, "lead_at_matched_accuracy_int8": None,
                    "latency_cut_channel_only": None, "latency_cut_channel_only_int8": None,
                    "accuracy_drop_channel_only": None, "channel_only_ratio": None})
        return {**out, **_unmatched_ceiling(result, rows, reference, channel_block)}
    above, below = result.bracket.above, result.bracket.below
    w = matched_weight(above.val_accuracy, below.val_accuracy, result.target)
    hi, lo = rows[above.ratio], rows[below.ratio]
    matched = {p: interpolate(hi[p]["p50_ms"], lo[p]["p50_ms"], w) for p in ("float32", "int8")}
    test_acc = interpolate(hi["float32"]["accuracy"], lo["float32"]["accuracy"], w)
    return {**out, "channel_only_bracket": [_bracket_point(above, hi), _bracket_point(below, lo)],
            "channel_only_bracket_reason": None, "channel_only_matched_weight": round(w, 4),
            "channel_only_matched_latency_ms": matched["float32"], "channel_only_matched_latency_ms_int8": matched["int8"],
            "lead_at_matched_accuracy_float32": round(lead(reference["float32"]["p50_ms"], channel_block["float32"]["p50_ms"],
                                                           matched["float32"]), 4),
            "lead_at_matched_accuracy_int8": round(lead(reference["int8"]["p50_ms"], channel_block["int8"]["p50_ms"],
                                                        matched["int8"]), 4),
            "latency_cut_channel_only": round(cut(reference["float32"]["p50_ms"], matched["float32"]), 4),
            "latency_cut_channel_only_int8": round(cut(reference["int8"]["p50_ms"], matched["int8"]), 4),
            "accuracy_drop_channel_only": round(reference["float32"]["accuracy"] - test_acc, 4),
            "channel_only_ratio": round(interpolate(above.ratio, below.ratio, w), 4)}


def _unmatched_ceiling(result: Sweep, rows: dict, reference: dict, channel_block: dict) -> dict:
    """Where every ratio tried reaches the target, the most aggressive one is the fastest channel-only
    model at least as accurate. The lead over it is a ceiling on the matched lead, not the matched
    lead: a matched channel-only model would be pruned harder, hence faster, and the lead smaller.
    It is reported under its own name. Where no ratio reaches the target, channel + block is more
    accurate than every channel-only model tried and no figure is given."""
    reaching = [p for p in result.points if p.val_accuracy >= result.target]
    if len(reaching) != len(result.points):
        return {}
    point = max(reaching, key=lambda p: p.ratio)
    row = rows[point.ratio]
    return {"lead_over_most_aggressive_channel_only": {
        "ratio": point.ratio, "val_accuracy": point.val_accuracy,
        "float32": round(lead(reference["float32"]["p50_ms"], channel_block["float32"]["p50_ms"], row["float32"]["p50_ms"]), 4),
        "int8": round(lead(reference["int8"]["p50_ms"], channel_block["int8"]["p50_ms"], row["int8"]["p50_ms"]), 4),
        "note": "a ceiling, not at matched accuracy: this channel-only model is at least as accurate as channel "
                "+ block on validation; a matched one would be pruned harder and faster, the lead smaller"}}


def expected_exit_ms(exit_rate: float, head_ms: float, head_tail_ms: float) -> float:
    """Expected latency of a dynamic exit: exiting clips pay the head, the others head and tail."""
    if not 0.0 <= exit_rate <= 1.0:
        raise ValueError(f"exit rate must be in [0, 1], got {exit_rate}")
    return exit_rate * head_ms + (1.0 - exit_rate) * head_tail_ms
