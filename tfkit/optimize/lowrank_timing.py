"""Low-rank ranks chosen by measured latency (`LowRankConfig.latency_budget`).

Each eligible layer is cut out of the model, reading a tensor of its real input shape, and
converted as it is and factorized at a few ranks (multiples of `round_to` below the break-even
rank, evenly spread); all are timed on `LowRankConfig.device` (tfkit.bench.timing) in
`precision`, interleaved over `timing_rounds` rounds with the fastest round kept. A layer gets the largest rank whose p50 is
within the budget, or is left as it is with its times in the reason. Layers of the same class,
config and input shape are timed once: latency does not depend on the weights.

Example:
    >>> factorize(model, LowRankConfig(latency_budget=0.6), sample=clips[:1])  # doctest: +SKIP
"""
from __future__ import annotations

import json

import numpy as np


def candidate_ranks(rows: int, cols: int, step: int, most: int) -> list[int]:
    """Multiples of `step` whose factorized kernel has fewer weights than the original (rank
    r costs r * (rows + cols) against rows * cols), at most `most` of them, evenly spread,
    the largest always included.

    >>> candidate_ranks(64, 64, 8, 3)
    [8, 16, 24]
    >>> candidate_ranks(256, 256, 8, 4)
    [8, 48, 80, 120]
    """
    top = min((rows * cols - 1) // (rows + cols), rows, cols)
    ranks = list(range(step, top + 1, step))
    if len(ranks) > most:
        ranks = sorted({ranks[int(i)] for i in np.linspace(0, len(ranks) - 1, most).round()})
    return ranks


def ranks_by_latency(graph, timed: dict, config, *, sample: np.ndarray, calibration: np.ndarray | None = None,
                     device=None, bench_config=None) -> tuple[dict, dict, dict]:
    """For each layer in `timed` ({name: (u, s, vt, rows, cols, use_bias)}: its kernel's SVD),
    the rank chosen under `config.latency_budget`, timed on `device` (a Device; default: the one
    `config.device` names). Returns ({name: rank}, {name: timings},
    {name: why it is left as it is})."""
    from tfkit.bench.timing import piece_config, time_flatbuffers, timing_device
    from tfkit.convert.tflite import convert_keras
    from tfkit.optimize.blocks import sub_model, timing_inputs
    from tfkit.optimize.graph import Graph
    from tfkit.optimize.lowrank import _plan, rebuild_factorized

    device = timing_device(device if device is not None else config.device)
    g = Graph.of(graph, "low-rank factorization by latency budget (each layer is timed alone)")
    sources = {name: g.nodes[name].inputs[0] for name in timed}
    shapes, inputs = timing_inputs(graph, list(sources.values()), sample, calibration, config.precision)

    models: dict[str, bytes] = {}
    plan_of: dict[str, tuple[str, list[int]]] = {}  # layer -> (signature, ranks timed)
    reasons: dict[str, str] = {}
    for name, (u, s, vt, rows, cols, bias) in timed.items():
        node, source = g.nodes[name], sources[name]
        signature = json.dumps([shapes[source], node.class_name, {k: v for k, v in node.config.items() if k != "name"}],
                               sort_keys=True, default=str)
        known = next((ranks for sig, ranks in plan_of.values() if sig == signature), None)
        if known is not None:
            plan_of[name] = (signature, known)
            continue
        ranks = candidate_ranks(rows, cols, config.round_to, config.max_candidates)
        if not ranks:
            reasons[name] = (f"no multiple of round_to={config.round_to} has fewer weights than the original "
                             f"{rows} x {cols} kernel")
            continue
        plan_of[name] = (signature, ranks)
        alone = sub_model(graph, [name], source, shapes[source], g, name=f"lowrank_{name}")

        def convert(m, source=source):
            return convert_keras(m, config.precision, calibration=inputs.get(source))

        models[f"{signature} original"] = convert(alone)
        for rank in ranks:
            factored = rebuild_factorized(alone, {name: _plan(u, s, vt, rank, rows, cols, bias)})
            models[f"{signature} {rank}"] = convert(factored)
    p50 = time_flatbuffers(models, device, bench_config or piece_config(), rounds=config.timing_rounds,
                           precision=config.precision) if models else {}

    chosen, timings = {}, {}
    for name, (signature, ranks) in plan_of.items():
        original = p50[f"{signature} original"]
        by_rank = {rank: p50[f"{signature} {rank}"] for rank in ranks}
        within = [rank for rank in ranks if by_rank[rank] <= config.latency_budget * original]
        if within:
            chosen[name] = max(within)
            timings[name] = {"original": original, "factorized": by_rank[chosen[name]], "by_rank": by_rank}
        else:
            fastest = min(by_rank, key=by_rank.get)
            reasons[name] = (f"no rank meets latency_budget {config.latency_budget}: {original:.4f} ms as it is, "
                             f"the fastest factorized {by_rank[fastest]:.4f} ms (rank {fastest}, {config.precision})")
    return chosen, timings, reasons
