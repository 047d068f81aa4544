"""Benchmark .tflite artifacts on a device: latency, init time, memory and (optionally) accuracy.

Example:
    >>> from tfkit.bench import benchmark, BenchConfig
    >>> results = benchmark([("tsm", "int8", "out/05-convert/model_int8.tflite")],
    ...                     eval_npz="clips.npz", config=BenchConfig(threads=4))
    >>> results[0].latency_ms.p50, results[0].accuracy
    (0.47, 0.81)
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from tfkit.bench.devices import DEVICES, BenchConfig, Device, Runtime
from tfkit.bench.parse import parse_runner_output
from tfkit.errors import BenchmarkError, UsageError
from tfkit.progress import progress_bar
from tfkit.types import BenchResult, Precision

__all__ = ["DEVICES", "BenchConfig", "Device", "Runtime", "benchmark", "parse_runner_output"]

ModelEntry = Sequence  # (name, precision, path)


def benchmark(
    models: Iterable[ModelEntry],
    *,
    device: str | Device = "local",
    eval_npz: str | os.PathLike | None = None,
    config: BenchConfig | None = None,
    progress: bool = True,
) -> list[BenchResult]:
    """Run each (name, precision, path) on `device`, each in a fresh runner process, in order.

    Every model is tried even when one fails; then, if any failed, a BenchmarkError names each
    failed model with the device's own words, and its `results` attribute holds the successes.
    """
    config = config or BenchConfig()
    if isinstance(device, Device):
        target = device
    else:
        # One parser for every address and devices.yaml name; imported here to keep `import tfkit.bench` light.
        from tfkit.bench.devices.kinds import open_device

        target = open_device(device)
    entries = [_check_entry(entry) for entry in models]
    results: list[BenchResult] = []
    failures: list[str] = []
    with progress_bar(f"benchmark on {target.name}", total=len(entries), enabled=progress) as advance:
        for name, precision, path in entries:
            try:
                result = target.run(path, eval_npz=eval_npz, config=config, name=name, precision=precision)
            except BenchmarkError as e:
                failures.append(str(e))
                advance(model=f"{name} ({precision})", status="failed")
                continue
            results.append(result)
            advance(model=f"{name} ({precision})", p50_ms=result.latency_ms.p50)
    if failures:
        error = BenchmarkError(
            f"{len(failures)} of {len(entries)} models failed on {target.name}:\n\n" + "\n\n".join(failures)
        )
        error.results = results  # the successes, so a long batch is not lost to one bad model
        raise error
    return results


def _check_entry(entry: ModelEntry) -> tuple[str, str, str]:
    if isinstance(entry, (str, bytes)) or len(entry) != 3:
        raise UsageError(f"Each model is (name, precision, path); got {entry!r}.")
    name, precision, path = entry
    precision = precision.value if isinstance(precision, Precision) else str(precision)
    return str(name), precision, os.fspath(path)
