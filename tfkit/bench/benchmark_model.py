"""LiteRT's `benchmark_model` on a phone: the command line tfkit runs, and a parser of all it prints.

Every shape its builds print is read from the same stdout/stderr/exit code: the summary
`Inference timings in us: Init: …, First inference: …, Warmup (avg): …, Inference (avg): …` with or
without the `INFO: ` prefix and with or without p5/median/p95 on the per-run statistics line, the
2019 `Average inference timings in us: …` line, the APK's logcat lines (`… tflite  : …`), the
CompiledModel tool's `BENCHMARK RESULTS` block, the memory lines, the delegate lines and the
`--enable_op_profiling` tables. The device is not trusted: what is not one whole result becomes a
`BenchmarkError` with the device's own words and what to do. Percentiles are only those the tool
printed; `extra["percentile_method"]` says which.

Example:
    >>> benchmark_model_command("/data/local/tmp/benchmark_model", "/data/local/tmp/m.tflite", threads=4,
    ...                         delegate="gpu", big_cores=[4, 5, 6, 7], warmup=5, runs=50)[:3]
    ['taskset', 'f0', '/data/local/tmp/benchmark_model']
    >>> parse_benchmark_model(out, err, rc, name="tsm", precision="int8", device="adb:R58M").latency_ms.p50
    17.861
"""
from __future__ import annotations

import math
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tfkit.bench.op_profile import NUM, read_op_tables
from tfkit.bench.op_profile import Invalid as _Invalid
from tfkit.bench.op_profile import number as _number
from tfkit.bench.parse import UNAVAILABLE, describe_exit, output_tail
from tfkit.errors import BenchmarkError, UsageError
from tfkit.types import BenchResult, LatencyStats, Precision

RUNTIME = "litert benchmark_model"
COMPILED_RUNTIME = "litert benchmark_model (CompiledModel)"
GET_BINARY = ("tfkit cannot ship benchmark_model: download LiteRT's prebuilt nightly android_aarch64_benchmark_model "
              "(arm64-v8a phones; android_arm_benchmark_model for armeabi-v7a), linked from LiteRT's performance-"
              "measurement guide (https://ai.google.dev/edge/litert/models/measurement), or build "
              "//tflite/tools/benchmark:benchmark_model (or //litert/tools:benchmark_model) with --config=android_arm64, "
              "then pass its path (--benchmark-binary PATH).")
# The tool's provider names (GetName()) and delegate kernel names, as tfkit's delegate names.
PROVIDER_NAMES = {"GPU": "gpu", "XNNPACK": "xnnpack", "NNAPI": "nnapi", "EXTERNAL": "external",
                  "Hexagon": "hexagon", "COREML": "coreml", "STABLE_DELEGATE": "stable_delegate"}
KERNEL_NAMES = {"TfLiteXNNPackDelegate": "xnnpack", "TfLiteGpuDelegateV2": "gpu", "TfLiteGpuDelegate": "gpu",
                "TfLiteNnapiDelegate": "nnapi"}
# Device words -> (kind, what to do); the first pattern found decides.
FAILURES: tuple[tuple[str, str, str], ...] = (
    (r"not executable: \d+-bit ELF file|cannot execute binary file|Exec format error", "wrong_abi",
     ("The binary is built for another CPU: use the android_aarch64 build on arm64-v8a phones, android_arm "
     "on armeabi-v7a ones (tfkit devices shows each phone's ABI).")),
    (r"Could not open '|Failed to load model|Failed to initialize model loader", "model_not_found",
     "benchmark_model could not read the model: check it was pushed whole to the path given to --graph."),
    (r"Failed to apply .+ delegate", "delegate",
     ("Nothing ran: a delegate that fails is never replaced by the CPU. Check its coverage (tfkit check), "
     "or time the CPU path with --delegate default.")),
    (r"Permission denied", "binary_not_executable",
     ("Make it executable (adb shell chmod 755 PATH) and keep it under /data/local/tmp (/sdcard does not "
     "run programs).")),
    (r"CANNOT LINK EXECUTABLE", "missing_library",
     ("The binary needs a shared library the phone lacks: push it beside the binary and run with "
     "LD_LIBRARY_PATH=/data/local/tmp, or use a build that links it statically.")),
    (r"inaccessible or not found|No such file or directory|: not found", "binary_missing", GET_BINARY),
    (r"Didn't find op for builtin opcode|unresolved custom op|Op type not registered|Select TensorFlow op",
     "unsupported_op",
     ("This build lacks an op the model uses: use a newer build, benchmark_model_plus_flex for TF ops, or "
     "convert without them.")),
    (r"Failed to allocate tensors", "allocate",
     "The model loaded but could not be prepared: check the converter's log and the input shapes."),
    (r"[Ff]ailed to invoke", "invoke",
     "The model failed while running: check the input shapes and the converter's parity check."),
)
COMPILED_FIELDS = (("latency_min_ms", r"Inference \(min\)", " ms"),
                   ("latency_max_ms", r"Inference \(max\)", " ms"),
                   ("latency_std_ms", r"Inference \(std\)", "(?: ms)?"),
                   ("throughput_mb_per_s", "Throughput", " MB/s"),
                   ("memory_init_mb", "Init footprint", " MB"),
                   ("memory_overall_mb", "Overall footprint", " MB"),
                   ("peak_memory_mb", "Peak memory", " MB"))


class _DelegateMismatch(_Invalid):
    """The log shows a delegate other than the one tfkit asked for."""


def parse_benchmark_model(stdout: str, stderr: str, rc: int, *, name: str, precision: Precision | str,
                          device: str, threads: int | None = None, size_bytes: int | None = None,
                          expected_delegate: str | None = None) -> BenchResult:
    """One benchmark_model run as a BenchResult, or BenchmarkError with the device's words and a hint.

    `threads` / `size_bytes` (what tfkit asked for and pushed) win over what the log says, which fills
    in when they are not given (-1 / 0 when the log does not say either). `expected_delegate` (what
    tfkit asked for) turns a run whose log shows another delegate into an error, never a CPU number
    under the delegate's name.
    """
    precision = Precision(precision).value if isinstance(precision, Precision) else str(precision)
    where = f"{name} ({precision}) on {device}"
    lines = _lines(stdout) + _lines(stderr)
    has_summary = any(_CLASSIC.fullmatch(msg.strip()) or _OLD.fullmatch(msg.strip()) for _, msg in lines)
    compiled = any(msg.strip() == _BLOCK for _, msg in lines)
    if rc != 0 or not (has_summary or compiled):
        raise BenchmarkError(_failure_message(where, rc, _failure(lines), stdout, stderr,
                                              has_summary or compiled))
    try:
        return _result(lines, name=name, precision=precision, device=device, threads=threads,
                       size_bytes=size_bytes, expected_delegate=expected_delegate, compiled=compiled)
    except _DelegateMismatch as e:
        raise BenchmarkError(f"{where} failed [delegate]: {e}.{output_tail('stdout', stdout)}") from None
    except _Invalid as e:
        raise BenchmarkError(f"{where}: benchmark_model's output is not usable: {e}."
                             f"{output_tail('stdout', stdout)}{output_tail('stderr', stderr)}") from None


def benchmark_model_command(binary: str, model: str, *, threads: int, delegate: str,
                            big_cores: Sequence[int] | None = None, warmup: int = 1, runs: int = 50,
                            op_profiling: bool = False, delegate_library: str | None = None,
                            peak_memory: bool = True) -> list[str]:
    """The argv that times `model` with `binary` on a phone, under `taskset` when `big_cores` are given.

    Delegate flags are the delegate provider's own `benchmark_flags`: "default" adds none (the
    runtime's own CPU path, XNNPACK in current builds) and "none" turns XNNPACK off. `threads` always
    wins over a provider's `--num_threads`; `delegate_library` (a path on the phone) replaces an
    external delegate's library or loads a provider that has no flags.
    """
    for label, value, least in (("threads", threads, 1), ("warmup", warmup, 0), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"benchmark_model {label} must be an integer >= {least}, got {value!r}")
    argv = ["taskset", cpu_mask(big_cores)] if big_cores else []
    argv += [binary, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
             f"--num_runs={runs}", *delegate_flags(delegate, delegate_library=delegate_library)]
    if op_profiling:
        argv.append("--enable_op_profiling=true")
    if peak_memory:
        argv.append("--report_peak_memory_footprint=true")
    return argv


def delegate_flags(delegate: str, *, delegate_library: str | None = None) -> list[str]:
    """benchmark_model flags for a tfkit delegate name, from its provider (never its --num_threads)."""
    if delegate == "default":
        return []
    if delegate == "none":
        return ["--use_xnnpack=false"]
    from tfkit.delegates.base import get_delegate  # loads plug-ins: only when a delegate is asked for

    flags = [f for f in get_delegate(delegate).benchmark_flags if not f.startswith("--num_threads=")]
    if delegate_library:
        flags = [f for f in flags if not f.startswith("--external_delegate_path=")]
        flags.append(f"--external_delegate_path={delegate_library}")
    if not flags:
        raise UsageError(f"delegate {delegate!r} has no benchmark_model flags: give its library on the phone "
                         "(--delegate-library PATH) to load it as an external delegate")
    return flags


def cpu_mask(cores: Iterable[int]) -> str:
    """taskset's hex mask for core ids: [4, 5, 6, 7] -> 'f0'."""
    mask = 0
    for core in cores:
        if isinstance(core, bool) or not isinstance(core, int) or not 0 <= core < 1024:
            raise UsageError(f"CPU core ids are integers from 0, got {core!r}")
        mask |= 1 << core
    return format(mask, "x")


def big_cores(max_freq_khz: Mapping[Any, Any], *, at_least: int = 1) -> list[int]:
    """The cores of the fastest cluster (highest max frequency), adding slower clusters, fastest first,
    until there are `at_least`. Keys are 'cpu4', '4' or 4; unreadable readings are skipped, and none
    readable gives [] (do not pin).

    Example:
        >>> big_cores({"cpu0": 1800000, "cpu4": 2400000, "cpu7": 3000000}, at_least=2)
        [4, 7]
    """
    known: dict[int, int] = {}
    for key, freq in max_freq_khz.items():
        match = re.fullmatch(r"(?:cpu)?(\d+)", str(key))
        if match and isinstance(freq, int) and not isinstance(freq, bool) and freq > 0:
            known[int(match[1])] = freq
    chosen: list[int] = []
    for freq in sorted(set(known.values()), reverse=True):
        chosen += [core for core, f in known.items() if f == freq]
        if len(chosen) >= at_least:
            break
    return sorted(chosen)


# ---- reading lines -------------------------------------------------------------------------------
_LOGCAT = re.compile(r"^(?:\.\.\.|\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF])"
                     r"\s+(?:tflite|litert)\s*: |^[VDIWEF]/(?:tflite|litert)\s*\(\s*\d+\): ")
_SEVERITY = re.compile(r"^(INFO|WARN|WARNING|ERROR|VERBOSE|FATAL): ")
_LOCATION = re.compile(r"^\[[\w.+-]+:\d+\] ?")  # LITERT_LOG's "[file.cc:89] "
_CLASSIC = re.compile(rf"Inference timings in us: Init: (?P<init>{NUM}), First inference: (?P<first>{NUM}), "
                      rf"Warmup \(avg\): (?P<warmup>{NUM}), Inference \(avg\): (?P<avg>{NUM})")
_OLD = re.compile(rf"Average inference timings in us: Warmup: (?P<warmup>{NUM}), Init: (?P<init>{NUM}), "
                  rf"(?:Inference|no stats): (?P<avg>{NUM})")
_STATS = re.compile(r"count=\d+.*")
_STAT_SHAPES = (["count"], ["count", "curr"], ["count", "first", "curr", "min", "max", "avg", "std"])
_PERCENTILES = ["p5", "median", "p95"]
_BLOCK = "========== BENCHMARK RESULTS =========="


def _lines(text: str) -> list[tuple[str | None, str]]:
    """(severity, message) per line, without logcat, severity and `[file:line]` prefixes."""
    out = []
    for raw in (text or "").replace("\r\n", "\n").split("\n"):
        line = _LOGCAT.sub("", raw, count=1)
        severity = _SEVERITY.match(line)
        if severity:
            line = _LOCATION.sub("", line[severity.end():], count=1)
        out.append((severity[1] if severity else None, line))
    return out


def _find(lines, pattern: str) -> re.Match | None:
    regex = re.compile(pattern)
    return next((m for _, msg in lines if (m := regex.fullmatch(msg.strip()))), None)


def _all(lines, pattern: str) -> list[re.Match]:
    regex = re.compile(pattern)
    return [m for _, msg in lines if (m := regex.fullmatch(msg.strip()))]


def _stats(message: str) -> dict[str, float]:
    """`count=50 first=… curr=… min=… max=… avg=… std=… [p5=… median=… p95=…]` as numbers (µs)."""
    body = message.strip()
    pairs = re.findall(rf"(\w+)=({NUM})", body)
    keys = [k for k, _ in pairs]
    if (" ".join(f"{k}={v}" for k, v in pairs) != body.replace("(all same)", "")
            or keys not in ([*shape, *more] for shape in _STAT_SHAPES for more in ([], _PERCENTILES))):
        raise _Invalid(f"the statistics line {body!r} is cut off or malformed")
    stats = {key: _number(value, f"statistics field {key}") for key, value in pairs}
    if keys == ["count"] or stats["count"] == 0:
        return {"count": 0}  # a phase that ran no iteration (--warmup_runs=0): nothing to read
    if "avg" not in stats:  # "count=N curr=V(all same)": every run took V
        stats.update(avg=stats["curr"], min=stats["curr"], max=stats["curr"], std=0.0)
    for low, high in (("min", "avg"), ("avg", "max"), ("p5", "median"), ("median", "p95")):
        if low in stats and high in stats and stats[low] > stats[high]:
            raise _Invalid(f"the statistics line {body!r} is not ordered ({low} > {high})")
    return stats


# ---- the result ----------------------------------------------------------------------------------
def _result(lines, *, name, precision, device, threads, size_bytes, expected_delegate,
            compiled) -> BenchResult:
    extra: dict[str, Any] = {"format": "compiled_model" if compiled else "classic"}
    timing = _compiled_timing(lines, extra) if compiled else _classic_timing(lines, extra)
    stats = [s for s in (_stats(msg) for _, msg in lines if _STATS.fullmatch(msg.strip())) if s["count"] > 0]
    regular, warmup = (stats[-1] if stats else None), (stats[-2] if len(stats) >= 2 else None)
    if regular is not None and not math.isclose(regular["avg"], timing["avg_us"], rel_tol=2e-3, abs_tol=10):
        if len(stats) > 1:
            raise _Invalid(f"the run statistics (avg={regular['avg']:g} us) disagree with the summary "
                           f"({timing['avg_us']:g} us): the output of two runs mixed?")
        warmup, regular = regular, None  # the one statistics line printed is the warm-up's
    if warmup is not None:
        extra["warmup_runs"] = int(warmup["count"])
    latency = _latency(timing, regular, extra)
    _memory(lines, extra)
    tables, extra["op_profile_format"] = read_op_tables(lines)
    extra["op_profile_tables"] = tables
    extra["op_profile"] = tables.get("run/primary/Summary by node type", [])
    extra["op_profile_nodes"] = tables.get("run/primary/Run Order", [])
    delegate = _delegate(lines, extra, expected_delegate, compiled)
    if size := _find(lines, rf"The input model file size \(MB\): ({NUM})"):
        extra["model_size_mb_reported"] = _number(size[1], "model file size")
    log_threads = _find(lines, r"(?:Num threads|#threads used for CPU inference): \[(-?\d+)\]")
    return BenchResult(
        name=name, precision=precision, latency_ms=latency,
        size_bytes=round(extra.get("model_size_mb_reported", 0) * 1e6) if size_bytes is None else size_bytes,
        init_ms=timing["init_us"] / 1000.0, first_inference_ms=timing["first_us"] / 1000.0,
        peak_rss_mb=extra.get("peak_memory_mb", math.nan),
        threads=threads if threads is not None else int(log_threads[1]) if log_threads else -1,
        runtime=COMPILED_RUNTIME if compiled else RUNTIME, device=device, extra=extra, delegate=delegate,
        energy_source=f"{UNAVAILABLE}: benchmark_model reads no energy counter",
    )


def _classic_timing(lines, extra: dict) -> dict[str, float]:
    found = [(m, "classic") for m in _all(lines, _CLASSIC.pattern)]
    found += [(m, "2019") for m in _all(lines, _OLD.pattern)]
    if len(found) != 1:
        raise _Invalid(f"{len(found)} summary lines ('Inference timings in us: …'); one run's output "
                       "expected")
    match, extra["summary_shape"] = found[0]
    first = _number(match["first"], "First inference") if extra["summary_shape"] == "classic" else math.nan
    timing = {"init_us": _number(match["init"], "Init"), "avg_us": _number(match["avg"], "Inference (avg)"),
              "first_us": first, "warmup_avg_us": _number(match["warmup"], "Warmup (avg)")}
    extra["warmup_avg_ms"] = timing["warmup_avg_us"] / 1000.0
    return timing


def _compiled_timing(lines, extra: dict) -> dict[str, float]:
    """The CompiledModel tool's `BENCHMARK RESULTS` block (milliseconds with 2 decimals)."""
    def value(label: str, unit: str = " ms", required: bool = True) -> tuple[float, int] | None:
        match = _find(lines, rf"{label}:\s+({NUM}){unit}(?: \((\d+) runs\))?")
        if match is None and required:
            raise _Invalid(f"the BENCHMARK RESULTS block has no '{label.replace(chr(92), '')}' line")
        return None if match is None else (_number(match[1], label.replace(chr(92), "")), int(match[2] or -1))
    extra.update({key: found[0] for key, label, unit in COMPILED_FIELDS
                  if (found := value(label, unit, False))})
    signature = _find(lines, r"Signature name:\s+(.+)")
    extra["signature"] = signature[1] if signature else None
    (avg, runs), (warm, warm_runs) = value(r"Inference \(avg\)"), value(r"Warmup \(avg\)")
    if runs <= 0:
        raise _Invalid("the CompiledModel tool ran no inference ('Inference (avg)' over 0 runs)")
    extra.update(warmup_avg_ms=warm, warmup_runs=warm_runs)
    first = value(r"(?:Warmup \(first\)|First inference)")[0]
    return {"init_us": value("Model initialization")[0] * 1000, "avg_us": avg * 1000, "compiled_runs": runs,
            "first_us": first * 1000, "warmup_avg_us": warm * 1000}


def _latency(timing: dict, regular: dict | None, extra: dict) -> LatencyStats:
    """The tool's own numbers only: p50 is its median when printed; p90/p99 are never printed (NaN)."""
    mean = (regular["avg"] if regular else timing["avg_us"]) / 1000.0  # the per-run line has more digits
    if mean <= 0:
        raise _Invalid("Inference (avg) is 0: no inference ran")
    nan = math.nan
    if regular is None:
        extra["percentile_method"] = (
            "not printed: the CompiledModel block gives avg, min, max and std only; p50/p90/p99 are NaN"
            if "compiled_runs" in timing else "not printed: only the summary line was captured (no per-run "
            "statistics line); p50/p90/p99 are NaN and runs is 0 (unknown)")
        return LatencyStats(p50=nan, p90=nan, p99=nan, mean=mean, runs=int(timing.get("compiled_runs", 0)))
    extra.update({f"latency_{k}_ms": regular[k] / 1000.0
                  for k in ("min", "max", "std", "p5", "p95") if k in regular})
    extra["percentile_method"] = (
        "benchmark_model's own nearest-rank percentiles (the sorted run times at index n*p/100): p50 is its "
        "median, p5/p95 are in extra; it prints no p90/p99, so they are NaN" if "median" in regular else
        "not printed: this benchmark_model build gives avg and std only; p50/p90/p99 are NaN "
        "(never estimated)")
    p50 = regular["median"] / 1000.0 if "median" in regular else nan
    return LatencyStats(p50=p50, p90=nan, p99=nan, mean=mean, runs=int(regular["count"]))


def _memory(lines, extra: dict) -> None:
    for label, note in (("Memory footprint delta from the start of the tool", None),
                        ("Peak memory footprint", ("the 2020-era line 'Peak memory footprint (MB)': max-RSS "
                                                  "growth from the tool's start, not a peak"))):
        if match := _find(lines, rf"{label} \(MB\): init=({NUM}) overall=({NUM})"):
            extra.update(memory_delta_init_mb=_number(match[1], "init memory"),
                         memory_delta_overall_mb=_number(match[2], "overall memory"))
            if note:
                extra["memory_note"] = note
    if peak := _find(lines, rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUM})"):
        extra["peak_memory_mb"] = _number(peak[1], "peak memory")
    if rss := _find(lines, rf"- VmRSS\s*: ({NUM}) MB"):
        extra["vm_rss_end_mb"] = _number(rss[1], "VmRSS")


def _delegate(lines, extra: dict, expected: str | None, compiled: bool) -> str:
    """The delegate that ran, from the tool's own lines; one asked for that took nothing is an error."""
    applied = _all(lines, r"Explicitly applied (?P<who>.+?) delegate, and the model graph will be "
                          r"(?P<how>completely|partially) executed by the delegate"
                          r"(?: w/ (?P<k>\d+) delegate kernels)?\.")
    declined = _all(lines, r"Though (?P<who>.+?) delegate is explicitly applied, the model graph will not be "
                           r"executed by the delegate\.")
    replaced = _all(lines, r"Replacing (?P<n>\d+) out of (?P<m>\d+) node\(s\) with delegate "
                           r"\((?P<kernel>[^)]+)\) node, yielding (?P<parts>\d+) partitions.*")
    extra["delegated_nodes"] = [{"delegate": KERNEL_NAMES.get(m["kernel"], m["kernel"]),
                                 "kernel": m["kernel"], "nodes": int(m["n"]), "of": int(m["m"]),
                                 "partitions": int(m["parts"])} for m in replaced]
    extra["delegates_applied"] = [{"delegate": PROVIDER_NAMES.get(m["who"], m["who"].lower()),
                                   "graph": m["how"], "kernels": int(m["k"] or 1)} for m in applied]
    extra["delegates_declined"] = [PROVIDER_NAMES.get(m["who"], m["who"].lower()) for m in declined]
    if accelerators := _find(lines, r"NNAPI accelerators available: \[(.*)\]"):
        extra["nnapi_accelerators"] = [a for a in accelerators[1].split(",") if a]
    if applied:
        ran = extra["delegates_applied"][0]["delegate"]
        ran = expected if ran == "external" and expected else ran  # external: the library tfkit gave
    elif replaced:  # builds (and the CompiledModel tool) that print no "Explicitly applied" line
        named = [d["delegate"] for d in extra["delegated_nodes"] if d["delegate"] != "xnnpack"]
        ran = named[0] if named else "xnnpack" if expected == "xnnpack" else "default"
        if ran == "default":  # current runtimes apply XNNPACK by themselves: that is the default CPU path
            extra["delegate_note"] = f"the runtime applied {replaced[0]['kernel']} on its own"
    elif compiled and expected:
        ran, extra["delegate_note"] = expected, "as asked for: the CompiledModel tool names no delegate"
    else:
        ran = "none" if expected == "none" else "default"
    if expected and expected not in ("default", ran):
        # The device's own reason: the delegate declined, a build without it, a platform without it.
        why = [m[0] for m in declined] + [msg.strip() for severity, msg in lines if severity in (
            "WARN", "WARNING", "ERROR") and ("Unconsumed cmdline flags" in msg or expected in msg.lower())]
        words = why[0] if why else "no line says it was applied"
        raise _DelegateMismatch(f"{expected} was asked for but the run was {ran}'s ({words}); a delegate "
                                "that takes no node is never reported under its name: check its coverage "
                                "(tfkit check) or bench with --delegate default")
    return ran


# ---- failures ------------------------------------------------------------------------------------
def _failure(lines) -> tuple[str, str, str] | None:
    """(kind, the device's line, hint) for the first known failure the output shows, else None."""
    for pattern, kind, hint in FAILURES:
        regex = re.compile(pattern)
        for severity, message in lines:
            if severity in (None, "ERROR", "FATAL") and regex.search(message):
                return kind, message.strip(), hint
    return None


def _failure_message(where: str, rc: int, failure, stdout: str, stderr: str, has_result: bool) -> str:
    tails, exit_ = f"{output_tail('stdout', stdout)}{output_tail('stderr', stderr)}", _describe(rc)
    if failure is not None:
        kind, words, hint = failure
        return f'{where} failed [{kind}]: "{words}". {hint} ({exit_}){tails}'
    if rc == 127:
        return f"{where} failed [binary_missing]: no benchmark_model there. {GET_BINARY} ({exit_}){tails}"
    if has_result:
        return f"{where}: benchmark_model printed a result but then {exit_}; not trusting it.{tails}"
    return (f"{where}: benchmark_model printed no result (no 'Inference timings in us' line nor BENCHMARK "
            f"RESULTS block; {exit_}): a cut-off or foreign output.{tails}")


def _describe(rc: int) -> str:
    """Exit codes over adb are the shell's: 128+N is signal N (137: SIGKILL, often the OOM killer)."""
    if rc > 128:
        try:
            return f"{describe_exit(-signal.Signals(rc - 128).value)} (exit code {rc})"
        except ValueError:
            pass
    return describe_exit(rc)
