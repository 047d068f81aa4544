"""Benchmark .tflite artifacts on a device: latency, init time, memory, energy and (optionally) accuracy.

Models are measured in rounds: in round r every model runs once, each in a fresh runner process,
with `BenchConfig.runs` split over the rounds and `cooldown_s` of rest between processes. Each
result merges its rounds, carries the device's fingerprint and hygiene readings, and says whether
the device throttled (a CPU's frequency cap fell, or p50 drifted more than 10% from the first round
to the last).

Example:
    >>> from tfkit.bench import benchmark, BenchConfig
    >>> results = benchmark([("tsm", "int8", "out/05-convert/model_int8.tflite")],
    ...                     eval_npz="clips.npz", config=BenchConfig(threads=4, runs=60, rounds=3))
    >>> results[0].latency_ms.p50, results[0].accuracy, results[0].throttled
    (0.47, 0.81, False)
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace

from tfkit.bench.devices import DEVICES, BenchConfig, Device, Runtime
from tfkit.bench.parse import UNAVAILABLE, parse_runner_output
from tfkit.errors import BenchmarkError, TfkitError, UsageError
from tfkit.progress import progress_bar
from tfkit.types import BenchResult, LatencyStats, Precision

__all__ = ["DEVICES", "BenchConfig", "Device", "Runtime", "benchmark", "device_fingerprint", "merge_rounds",
           "merge_stats", "parse_runner_output", "throttle_check"]

ModelEntry = Sequence  # (name, precision, path)
DRIFT_LIMIT = 0.10  # p50 moving more than this between the first and the last round flags throttling
EXACT_METHOD = "nearest-rank over all {count} {unit} of {rounds} rounds"
MERGED_METHOD = "median over {rounds} rounds of each round's nearest-rank percentile ({count} {unit} in all)"


def benchmark(
    models: Iterable[ModelEntry],
    *,
    device: str | Device = "local",
    eval_npz: str | os.PathLike | None = None,
    config: BenchConfig | None = None,
    progress: bool = True,
) -> list[BenchResult]:
    """Run each (name, precision, path) on `device` in `config.rounds` interleaved rounds.

    Accuracy is scored once, in the first round (it does not change between rounds). A model that
    fails is not run again in later rounds; every other model is still measured. Then, if any
    failed, a BenchmarkError names each failed model with the device's own words, and its `results`
    attribute holds the successes.
    """
    config = config or BenchConfig()
    target, address, device_name = _open(device)
    entries = [_check_entry(entry) for entry in models]
    fingerprint = device_fingerprint(target)
    measured: list[list[BenchResult]] = [[] for _ in entries]
    failures: dict[int, str] = {}
    started = False
    with progress_bar(f"benchmark on {target.name}", total=len(entries) * config.rounds, enabled=progress) as advance:
        for index, runs in enumerate(config.runs_per_round()):
            round_config = replace(config, runs=runs, rounds=1)
            where = f"round {index + 1} of {config.rounds}: " if config.rounds > 1 else ""
            for i, (name, precision, path) in enumerate(entries):
                label = f"{name} ({precision})"
                if i in failures:
                    advance(model=label, status="skipped (failed earlier)")
                    continue
                if started and config.cooldown_s > 0:
                    time.sleep(config.cooldown_s)  # let clocks and temperature settle between processes
                started = True
                try:
                    result = target.run(path, eval_npz=eval_npz if index == 0 else None, config=round_config,
                                        name=name, precision=precision)
                except BenchmarkError as e:
                    failures[i] = f"{where}{e}"
                    advance(model=label, status="failed")
                    continue
                measured[i].append(result)
                advance(model=label, p50_ms=result.latency_ms.p50)
    results = []
    for i, rounds in enumerate(measured):
        if i in failures:
            continue
        try:
            merged = merge_rounds(rounds, cooldown_s=config.cooldown_s, interleaved=len(entries))
        except BenchmarkError as e:
            failures[i] = str(e)
            continue
        results.append(replace(merged, device=address, device_name=device_name, fingerprint=fingerprint))
    if failures:
        error = BenchmarkError(
            f"{len(failures)} of {len(entries)} models failed on {target.name}:\n\n"
            + "\n\n".join(failures[i] for i in sorted(failures))
        )
        error.results = results  # the successes, so a long batch is not lost to one bad model
        raise error
    return results


def device_fingerprint(target: Device) -> dict:
    """What the device is, read once per benchmark; `{"error": why}` when it cannot be read (the
    benchmark itself may still run)."""
    try:
        fingerprint = target.fingerprint()
    except TfkitError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001  (a device kind's own bug must not cost the measurements)
        return {"error": f"{type(e).__name__}: {e}"}
    if not isinstance(fingerprint, dict):
        return {"error": f"the device's fingerprint() returned {type(fingerprint).__name__}, not a dict"}
    return fingerprint


def merge_rounds(rounds: Sequence[BenchResult], *, cooldown_s: float = 0.0, interleaved: int = 1) -> BenchResult:
    """One result from a model's rounds (each a fresh runner process over part of the runs).

    Exact where the runner's summaries allow it: mean (weighted by runs), min, max, the pooled
    standard deviation, the run count, peak RSS (the highest) and energy (total over all timed
    runs). The percentiles are exact too when the runner reported its single times (runner/2:
    nearest-rank over every run of every round); from an older runner's summaries they are the
    median of the rounds' values. `extra["percentile_method"]` says which. init and first-inference times are the rounds' medians;
    `extra["rounds"]` keeps every round's own numbers.
    """
    if not rounds:
        raise UsageError("merge_rounds needs at least one round.")
    first = rounds[0]
    where = f"{first.name} ({first.precision}) on {first.device}"
    for key in ("delegate", "runtime"):
        values = list(dict.fromkeys(getattr(r, key) for r in rounds))
        if len(values) > 1:
            raise BenchmarkError(f"{where}: the rounds ran on different {key}s ({', '.join(values)}); the results "
                                 "cannot be merged. Pin the runtime and delegate and run again.")
    throttled, reason = throttle_check(rounds)
    # Readings the runner did not take (an older runner) stay None: never filled in.
    hygiene = {**first.hygiene, "before": first.hygiene.get("before"), "after": rounds[-1].hygiene.get("after"),
               "rounds": len(rounds), "cooldown_s": cooldown_s, "models_interleaved": interleaved}
    if len(rounds) == 1:
        return replace(first, hygiene=hygiene, throttled=throttled, throttle_reason=reason)
    hygiene["per_round"] = [r.hygiene for r in rounds]
    stats = merge_stats([{**vars(r.latency_ms), "min": r.extra.get("latency_min_ms"),
                          "max": r.extra.get("latency_max_ms"), "std": r.extra.get("latency_std_ms"),
                          "times_ms": r.extra.get("latency_times_ms")}
                         for r in rounds], unit="runs")
    latency = LatencyStats(**{k: stats[k] for k in ("p50", "p90", "p99", "mean", "runs")})
    scored = next((r for r in rounds if r.accuracy is not None), first)
    energy, source = _merged_energy(rounds, [r.latency_ms.runs for r in rounds])
    rss = [r.peak_rss_mb for r in rounds if math.isfinite(r.peak_rss_mb)]
    extra = {**scored.extra, "rounds": [_round_record(r) for r in rounds], "percentile_method": stats["method"],
             "latency_min_ms": stats["min"], "latency_max_ms": stats["max"], "latency_std_ms": stats["std"],
             "latency_times_ms": stats.get("times_ms")}
    return replace(
        first, latency_ms=latency, accuracy=scored.accuracy, extra=extra,
        init_ms=statistics.median(r.init_ms for r in rounds),
        first_inference_ms=statistics.median(r.first_inference_ms for r in rounds),
        peak_rss_mb=max(rss) if rss else math.nan,
        energy_mj_per_inference=energy, energy_source=source, hygiene=hygiene,
        stream=_merged_stream(rounds), throttled=throttled, throttle_reason=reason)


def throttle_check(rounds: Sequence[BenchResult]) -> tuple[bool | None, str]:
    """(throttled, why) from a model's rounds: a CPU's max frequency reading lower in any later
    hygiene snapshot than in the first, or p50 more than 10% apart between the first round and the
    last. None when neither could be checked (one round, no frequency readings)."""
    snapshots = [(f"round {i + 1} {moment}", r.hygiene.get(moment)) for i, r in enumerate(rounds)
                 for moment in ("before", "after")]
    snapshots = [(label, snap["max_freq_khz"]) for label, snap in snapshots
                 if isinstance(snap, dict) and isinstance(snap.get("max_freq_khz"), dict) and snap["max_freq_khz"]]
    flags, checked = [], []
    if snapshots:
        baseline_label, baseline = snapshots[0]
        for label, readings in snapshots[1:]:
            for cpu, khz in readings.items():
                if cpu in baseline and khz < baseline[cpu]:
                    flags.append(f"{cpu} max frequency fell from {baseline[cpu]} kHz ({baseline_label}) to {khz} kHz "
                                 f"({label})")
                    baseline = {**baseline, cpu: khz}  # report each further fall once
        if not flags:
            checked.append(f"max frequency held on {len(snapshots[0][1])} CPUs over {len(snapshots)} readings")
    if len(rounds) >= 2:
        start, end = rounds[0].latency_ms.p50, rounds[-1].latency_ms.p50
        drift = (end - start) / start if start > 0 else 0.0
        text = f"p50 {'rose' if drift > 0 else 'fell'} {abs(drift):.1%} from round 1 ({start:.4g} ms) to round " \
               f"{len(rounds)} ({end:.4g} ms)"
        (flags if abs(drift) > DRIFT_LIMIT else checked).append(text)
    if flags:
        return True, "; ".join(flags)
    if checked:
        return False, "; ".join(checked)
    return None, ("not checked: one round and no CPU frequency readings (run more rounds, or on a device "
                  "that exposes cpufreq)")


def _merged_energy(rounds: Sequence[BenchResult], runs: Sequence[int]) -> tuple[float | None, str]:
    sources = list(dict.fromkeys(r.energy_source for r in rounds))
    missing = [r for r in rounds if r.energy_mj_per_inference is None]
    if missing:
        return None, missing[0].energy_source if missing[0].energy_source.startswith(UNAVAILABLE) else (
            f"{UNAVAILABLE}: {missing[0].energy_source}")
    energy = sum(r.energy_mj_per_inference * n for r, n in zip(rounds, runs)) / sum(runs)
    return energy, "; ".join(sources)


def merge_stats(rounds: Sequence[dict], *, unit: str = "runs") -> dict:
    """One latency summary from the rounds' {p50, p90, p99, mean, runs, min, max, std}: mean, runs,
    min, max and the population std are exact; each percentile is the median of the rounds' own
    (nearest-rank) values, and "method" says so. min/max/std are None unless every round has them."""
    total = sum(r["runs"] for r in rounds)
    mean = sum(r["mean"] * r["runs"] for r in rounds) / total
    if all(isinstance(r.get("times_ms"), list) for r in rounds):  # runner/2 reports every time: exact
        times = [t for r in rounds for t in r["times_ms"]]
        ordered = sorted(times)
        std = math.sqrt(sum((t - mean) ** 2 for t in ordered) / len(ordered))
        return {**{p: _nearest_rank(ordered, q) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))},
                "mean": mean, "runs": total, "min": ordered[0], "max": ordered[-1], "std": std, "times_ms": times,
                "method": EXACT_METHOD.format(rounds=len(rounds), count=total, unit=unit)}
    merged = {p: statistics.median(r[p] for r in rounds) for p in ("p50", "p90", "p99")}
    merged.update(mean=mean, runs=total, min=None, max=None, std=None,
                  method=MERGED_METHOD.format(rounds=len(rounds), count=total, unit=unit))
    if all(_is_number(r.get(k)) for r in rounds for k in ("min", "max", "std")):
        second_moment = sum(r["runs"] * (r["std"] ** 2 + r["mean"] ** 2) for r in rounds) / total
        merged.update(min=min(r["min"] for r in rounds), max=max(r["max"] for r in rounds),
                      std=math.sqrt(max(second_moment - mean ** 2, 0.0)))
    return merged


def _nearest_rank(ordered: Sequence[float], percent: int) -> float:
    """The runner's percentile rule: the smallest value with at least `percent`% of values <= it."""
    return ordered[max(1, -(-percent * len(ordered) // 100)) - 1]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _round_record(result: BenchResult) -> dict:
    """What one round measured, kept in the merged result's extra["rounds"]."""
    return {"runs": result.latency_ms.runs, "p50": result.latency_ms.p50, "p90": result.latency_ms.p90,
            "p99": result.latency_ms.p99, "mean": result.latency_ms.mean, "init_ms": result.init_ms,
            "first_inference_ms": result.first_inference_ms,
            "peak_rss_mb": result.peak_rss_mb if math.isfinite(result.peak_rss_mb) else None,
            "energy_mj_per_inference": result.energy_mj_per_inference}


def _merged_stream(rounds: Sequence[BenchResult]) -> dict | None:
    """Stream mode over the rounds: frames and missed deadlines summed, percentiles merged as the
    timed runs' are, accuracy from the round that scored clips."""
    streams = [r.stream for r in rounds]
    if any(s is None for s in streams):
        return None
    merged = dict(streams[0])
    merged["frames"] = sum(s["frames"] for s in streams)
    missed = [s.get("missed_deadlines") for s in streams]
    merged["missed_deadlines"] = None if any(m is None for m in missed) else sum(missed)
    per_round = [{**s["latency_ms"], "runs": s["latency_ms"].get("runs", s["frames"])} for s in streams]
    if all(_is_number(r.get("mean")) for r in per_round):
        merged["latency_ms"] = {**streams[0]["latency_ms"], **merge_stats(per_round, unit="frames")}
    else:  # a runner that left the mean out: the percentiles alone, still labelled
        merged["latency_ms"] = {**streams[0]["latency_ms"], **{p: statistics.median(r[p] for r in per_round)
                                                                for p in ("p50", "p90", "p99")},
                                "method": MERGED_METHOD.format(rounds=len(streams), count=merged["frames"],
                                                               unit="frames")}
    scored = next((s for s in streams if s.get("accuracy") is not None), streams[0])
    merged.update(accuracy=scored.get("accuracy"), clips=scored.get("clips"))
    return merged


def _open(device: str | Device) -> tuple[Device, str, str | None]:
    """(the device, its address as text, its devices.yaml name or None)."""
    if isinstance(device, Device):
        return device, str(getattr(device, "address", None) or device.name), None
    # One parser for every address and devices.yaml name; imported here to keep `import tfkit.bench` light.
    from tfkit.bench.devices.kinds import open_device

    target = open_device(device)  # it records the resolved address: devices.yaml is read once
    return target, str(target.address), target.address.name


def _check_entry(entry: ModelEntry) -> tuple[str, str, str]:
    if isinstance(entry, (str, bytes)) or len(entry) != 3:
        raise UsageError(f"Each model is (name, precision, path); got {entry!r}.")
    name, precision, path = entry
    precision = precision.value if isinstance(precision, Precision) else str(precision)
    return str(name), precision, os.fspath(path)
