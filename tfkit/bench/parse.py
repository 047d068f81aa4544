"""Pure parsers of what the on-device runner (`tfkit/bench/board/runner.py`) printed.

The device is not trusted: its stdout may hold native-library noise, a truncated line, or a JSON
object with missing or absurd fields. Every such case becomes a `BenchmarkError` that carries the
device's own words, never a raw KeyError or JSONDecodeError.

Example:
    >>> result = parse_runner_output(proc.stdout, proc.stderr, proc.returncode,
    ...                              name="tsm", precision="int8", device="local")
    >>> result.latency_ms.p50
    0.47
"""
from __future__ import annotations

import json
import math
import signal
from typing import Any

from tfkit.errors import BenchmarkError
from tfkit.types import BenchResult, LatencyStats, Precision

RUNNER_SCHEMA = "tfkit.runner/2"
# Every schema this parser reads: /1 (before delegates, hygiene and energy) still parses, its new
# fields taking their defaults, so a stale runner on a board and saved outputs keep working.
RUNNER_SCHEMAS = ("tfkit.runner/1", RUNNER_SCHEMA)
UNAVAILABLE = "unavailable"  # how an energy_source without a reading starts
SNAPSHOT_NUMBERS = ("freq_khz", "max_freq_khz", "thermal_c")  # per-CPU / per-zone readings in a hygiene snapshot
STDERR_TAIL_LINES = 15
RUNNER_ERROR_LOG = "[tfkit-runner] error ("

# What to do next, by the runner's error kind (the runner's own message always comes first).
ERROR_HINTS: dict[str, str] = {
    "unsupported_op": "This runtime does not know an op (or op version) in the model: run it with a newer "
    "runtime (ai-edge-litert), or convert a variant the board supports (float32/int8, not dynamic/int16x8).",
    "load": "The runtime could not load the file: check it is the .tflite the converter wrote and that it "
    "was copied whole.",
    "allocate": "The model loaded but could not be prepared (tensor shapes/quantization): check the "
    "converter's log; int16x8 models often fail here.",
    "invoke": "The model failed while running: check the input shapes and the converter's parity check.",
    "runtime_missing": "Install an interpreter on the device: pip install ai-edge-litert "
    "(or tflite-runtime with numpy<2 on old boards).",
    "model_not_found": "The model path does not exist where the runner ran: check the copy step.",
    "eval_data": "Fix the eval .npz: x uint8 (N,T,H,W,3) clips shaped like the model input, y int labels.",
    "eval_unsupported": "Accuracy can be measured only for single-input models with a (1, classes) output; "
    "benchmark without eval_npz.",
    "dynamic_input": "Export the model with fixed input sizes (batch may stay dynamic), e.g. a tf.function "
    "input_signature with every non-batch dimension set, then convert again.",
    "unsupported_input": "The runner makes random timing inputs of numeric and bool types only; this input "
    "type cannot be fed.",
    "usage": "tfkit passed the runner an option it does not accept: the runner on the device may be stale.",
    "delegate": "Nothing ran: a delegate that fails to load is never replaced by the CPU. Install it on the "
    "device (or pass --delegate-library PATH), or time the CPU path with --delegate default.",
    "stream_unsupported": "Stream mode needs a model with state inputs and outputs (tfkit metadata, or "
    "'<s>_in' -> '<s>_out' names): convert the streaming form, or benchmark without --stream.",
    "cpu_affinity": "The device refused the CPU set: give core ids it has (tfkit devices lists its cores).",
    "internal": "The runner itself crashed: please report it with the stderr shown.",
}


def parse_runner_output(
    stdout: str, stderr: str, returncode: int, *, name: str, precision: Precision | str, device: str
) -> BenchResult:
    """Turn the runner's stdout/stderr/exit code into a BenchResult, or raise BenchmarkError."""
    precision = Precision(precision).value if isinstance(precision, Precision) else str(precision)
    where = f"{name} ({precision}) on {device}"
    payload = last_json_object(stdout)
    if payload is None:
        raise BenchmarkError(
            f"{where}: the runner printed no JSON result ({describe_exit(returncode)})."
            f"{output_tail('stdout', stdout)}{output_tail('stderr', stderr)}"
        )
    if "error" in payload:
        kind = str(payload.get("kind", "unknown"))
        hint = ERROR_HINTS.get(kind, "")
        raise BenchmarkError(
            f"{where} failed [{kind}]: {payload['error']}"
            f"{' ' + hint if hint else ''} ({describe_exit(returncode)}){output_tail('stderr', stderr)}"
        )
    if returncode != 0:
        raise BenchmarkError(
            f"{where}: the runner printed a result but then {describe_exit(returncode)}; not trusting it."
            f"{output_tail('stderr', stderr)}"
        )
    try:
        return _to_result(payload, name=name, precision=precision, device=device)
    except _Invalid as e:
        raise BenchmarkError(f"{where}: the runner's result is not usable: {e}.{output_tail('stderr', stderr)}") from None


def last_json_object(stdout: str) -> dict[str, Any] | None:
    """The last line of `stdout` that is a whole JSON object (strict: no NaN/Infinity), else None."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            value = json.loads(line, parse_constant=_reject_constant)
        except ValueError:  # JSONDecodeError and our NaN refusal
            continue
        if isinstance(value, dict):
            return value
    return None


class _Invalid(ValueError):
    """A field of the runner's result is missing or out of range."""


def _reject_constant(token: str) -> None:
    raise ValueError(f"non-finite number {token} in runner output")


def _field(payload: dict, path: str) -> Any:
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise _Invalid(f"field {path!r} is missing")
        value = value[key]
    return value


def _number(payload: dict, path: str, *, minimum: float = 0.0, optional: bool = False, label: str = "") -> float:
    value, label = _field(payload, path), label or path
    if value is None and optional:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"field {label!r} is {value!r}, not a finite number")
    if value < minimum:
        raise _Invalid(f"field {label!r} is {value!r}, below {minimum}")
    return float(value)


def _integer(payload: dict, path: str, *, minimum: int) -> int:
    value = _field(payload, path)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Invalid(f"field {path!r} is {value!r}, not an integer >= {minimum}")
    return value


def _optional_number(payload: dict, path: str, *, minimum: float = 0.0) -> float | None:
    value = _number(payload, path, minimum=minimum, optional=True)
    return None if math.isnan(value) else value


def _string(payload: dict, path: str) -> str:
    value = _field(payload, path)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"field {path!r} is {value!r}, not a non-empty string")
    return value


def _mapping(payload: dict, path: str, *, optional: bool = True) -> dict | None:
    value = payload.get(path) if optional else _field(payload, path)
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise _Invalid(f"field {path!r} is {value!r}, not an object")
    return value


def _percentiles(stats: dict, where: str) -> tuple[float, float, float]:
    p50, p90, p99 = (_number(stats, p) for p in ("p50", "p90", "p99"))
    if not p50 <= p90 <= p99:
        raise _Invalid(f"{where} percentiles are not ordered (p50={p50}, p90={p90}, p99={p99})")
    return p50, p90, p99


def _energy(payload: dict) -> tuple[float | None, str]:
    energy = _optional_number(payload, "energy_mj_per_inference")
    source = _string(payload, "energy_source")
    if energy is not None and source.startswith(UNAVAILABLE):
        raise _Invalid(f"energy_mj_per_inference is {energy} but energy_source says {source!r}")
    if energy is None and not source.startswith(UNAVAILABLE):
        source = f"{UNAVAILABLE}: {source}"  # null energy always reads as unavailable, with the device's words
    return energy, source


def _hygiene(payload: dict) -> dict:
    """{"before": SNAP, "after": SNAP}; the readings the host computes on must be numbers."""
    hygiene = _mapping(payload, "hygiene")
    if hygiene is None:
        return {}
    for moment in ("before", "after"):
        snap = _field(payload, f"hygiene.{moment}")
        if not isinstance(snap, dict):
            raise _Invalid(f"field 'hygiene.{moment}' is {snap!r}, not an object")
        for key in SNAPSHOT_NUMBERS:
            readings = snap.get(key)
            if readings is None:
                continue
            if not isinstance(readings, dict):
                raise _Invalid(f"field 'hygiene.{moment}.{key}' is {readings!r}, not an object")
            for name, value in readings.items():  # names may hold dots ("soc-thermal.0"): no path lookup
                _number({"v": value}, "v", minimum=-300.0 if key == "thermal_c" else 0.0, label=f"hygiene.{moment}.{key}.{name}")
    return hygiene


def _times(stats: dict, where: str) -> list[float] | None:
    """The single times the runner reported (runner/2), checked: one finite non-negative number per
    run; None when absent (an older runner), so rounds then merge from summaries."""
    times = stats.get("times_ms")
    if times is None:
        return None
    if not isinstance(times, list) or len(times) != stats.get("runs"):
        raise _Invalid(f"{where} times_ms is not a list of {stats.get('runs')} times")
    for i, t in enumerate(times):
        _number({"t": t}, "t", label=f"{where} times_ms[{i}]")
    return [float(t) for t in times]


def _stream(payload: dict) -> dict | None:
    stream = _mapping(payload, "stream")
    if stream is None:
        return None
    _integer(stream, "frames", minimum=1)
    _percentiles(_mapping(stream, "latency_ms", optional=False), "stream latency")
    _times(stream["latency_ms"], "stream latency")
    if stream.get("missed_deadlines") is not None:
        _integer(stream, "missed_deadlines", minimum=0)
    accuracy = _optional_number(stream, "accuracy") if "accuracy" in stream else None
    if accuracy is not None and accuracy > 1.0:
        raise _Invalid(f"stream accuracy {accuracy} is above 1")
    return stream


def _to_result(payload: dict, *, name: str, precision: str, device: str) -> BenchResult:
    schema = payload.get("schema")
    if schema not in RUNNER_SCHEMAS:
        raise _Invalid(f"schema is {schema!r}, expected one of {', '.join(RUNNER_SCHEMAS)} (runner version mismatch?)")
    p50, p90, p99 = (_number(payload, f"latency_ms.{p}") for p in ("p50", "p90", "p99"))
    _percentiles(payload["latency_ms"], "latency")
    latency = LatencyStats(
        p50=p50, p90=p90, p99=p99, mean=_number(payload, "latency_ms.mean"),
        runs=_integer(payload, "latency_ms.runs", minimum=1),
    )
    accuracy = None
    evaluation = payload.get("eval")
    if evaluation is not None:
        accuracy = _number(payload, "eval.accuracy")
        if accuracy > 1.0:
            raise _Invalid(f"eval accuracy {accuracy} is above 1")
    runtime, version = str(_field(payload, "runtime")), str(payload.get("runtime_version", "unknown"))
    extra = {
        "runtime_version": version,
        "model_path": payload.get("model_path"),
        "warmup_runs": payload.get("warmup_runs"),
        "latency_min_ms": payload["latency_ms"].get("min"),
        "latency_max_ms": payload["latency_ms"].get("max"),
        "latency_std_ms": payload["latency_ms"].get("std"),
        "percentile_method": payload["latency_ms"].get("method"),
        "latency_times_ms": _times(payload["latency_ms"], "latency"),
        "baseline_rss_mb": payload.get("baseline_rss_mb"),
        "inputs": payload.get("inputs"),
        "outputs": payload.get("outputs"),
        "host": payload.get("host"),
        "eval": evaluation,
        "runner_schema": schema,
    }
    if schema == "tfkit.runner/1":  # measured before the runner knew delegates, hygiene and energy
        delegate, energy, source, hygiene, stream = "default", None, (
            f"{UNAVAILABLE}: the runner on the device is {schema}, which does not read energy counters"), {}, None
    else:
        delegate, (energy, source) = _string(payload, "delegate"), _energy(payload)
        hygiene, stream = _hygiene(payload), _stream(payload)
        extra["delegate_detail"] = _mapping(payload, "delegate_detail")
        affinity = payload.get("cpu_affinity")
        if affinity is not None and not (isinstance(affinity, list) and all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in affinity)):
            raise _Invalid(f"field 'cpu_affinity' is {affinity!r}, not a list of core ids")
        extra["cpu_affinity"] = affinity
    return BenchResult(
        name=name,
        precision=precision,
        size_bytes=_integer(payload, "model_size_bytes", minimum=0),
        latency_ms=latency,
        init_ms=_number(payload, "init_ms"),
        first_inference_ms=_number(payload, "first_inference_ms"),
        peak_rss_mb=_number(payload, "peak_rss_mb", optional=True),  # NaN where the OS cannot tell
        threads=_integer(payload, "threads", minimum=1),
        runtime=f"{runtime} {version}",
        accuracy=accuracy,
        device=device,
        extra=extra,
        delegate=delegate,
        energy_mj_per_inference=energy,
        energy_source=source,
        hygiene=hygiene,
        stream=stream,
    )


def describe_exit(returncode: int) -> str:
    if returncode == 0:
        return "exit code 0"
    if returncode < 0:
        try:
            signal_name = signal.Signals(-returncode).name
        except ValueError:
            signal_name = f"signal {-returncode}"
        why = " - often the out-of-memory killer" if signal_name == "SIGKILL" else ""
        return f"killed by {signal_name}{why}"
    return f"exit code {returncode}"


def output_tail(label: str, text: str, lines: int = STDERR_TAIL_LINES, limit: int = 2000) -> str:
    """The last lines of a stream, clipped, for error messages; empty if the stream is empty."""
    # The runner's own "error (kind): ..." log line repeats the JSON error: leave it out.
    kept = [ln for ln in (text or "").splitlines() if ln.strip() and not ln.startswith(RUNNER_ERROR_LOG)]
    kept = kept[-lines:]
    if not kept:
        return ""
    body = "\n".join(kept)
    if len(body) > limit:
        body = "..." + body[-limit:]
    return f"\n--- device {label} (last {len(kept)} lines) ---\n{body}"
