"""Shared by the benchmark scripts: the MoViNet-A0-Stream anchor's per-frame LiteRT latency.

    from _movinet import movinet_a0_stream_latency
    anchor, why = movinet_a0_stream_latency(size=172, threads=1)
    result["movinet_a0_stream"] = anchor          # None when it could not be measured
    result["movinet_a0_stream_error"] = why       # None when it was

Runs benchmarks/movinet_anchor.py in a subprocess (its TF Model Garden dependencies live outside the
project venv, in ~/.cache/tfkit/movinet-anchor/site, or wherever TFKIT_MOVINET_PYTHONPATH points;
install them with benchmarks/setup_movinet_anchor.sh). The first call builds and converts (several
minutes); later ones reuse the cached .tflite files and take seconds. Never raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("movinet_anchor.py")
PREFIX = "movinet_anchor:"


def default_site_dir() -> Path:
    root = os.environ.get("TFKIT_MOVINET_CACHE") or Path.home() / ".cache" / "tfkit" / "movinet-anchor"
    return Path(root) / "site"


def _reason(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    ours = [ln for ln in lines if ln.startswith(f"{PREFIX} error:")]
    if ours:
        return ours[-1][len(f"{PREFIX} error:") :].strip()
    tail = next((ln for ln in reversed(lines) if not ln.startswith(("I0000", "W0000", "WARNING: All"))), "")
    return f"movinet_anchor.py exited with status {proc.returncode}: {tail[:300] or 'no output'}"


def movinet_a0_stream_latency(
    size: int = 172,
    threads: int = 1,
    timeout: float = 900,
    *,
    int8: bool = True,
    frames: int = 50,
    measure: bool = True,
) -> tuple[dict | None, str | None]:
    """(result dict as movinet_anchor.py writes it, None) or (None, why it could not be measured).
    measure=False only builds (or finds) the .tflite files and counts their MACs: the dict's
    "tflite" names them, for `compare` to time beside ours."""
    try:
        env = dict(os.environ)
        site = os.environ.get("TFKIT_MOVINET_PYTHONPATH")
        if not site and default_site_dir().is_dir():
            site = str(default_site_dir())
        if site:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
        with tempfile.TemporaryDirectory(prefix="movinet_anchor_") as tmp:
            out = Path(tmp) / "movinet.json"
            cmd = [
                sys.executable,
                str(SCRIPT),
                "--json",
                str(out),
                "--size",
                str(size),
                "--threads",
                str(threads),
                "--frames",
                str(frames),
                "--int8" if int8 else "--no-int8",
                "--measure" if measure else "--no-measure",
            ]
            try:
                proc = subprocess.run(
                    cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                return None, (
                    f"movinet_anchor.py timed out after {timeout:.0f} s (a first build takes "
                    "several minutes; rerun with a larger timeout)"
                )
            if proc.returncode != 0:
                return None, _reason(proc)
            if not out.is_file():
                return None, "movinet_anchor.py exited 0 but wrote no JSON"
            return json.loads(out.read_text()), None
    except Exception as e:  # noqa: BLE001 - the caller writes null + this reason instead
        return None, f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------- side-by-side timing

MOVINET = "movinet_a0_stream"
# Compared per frame: CPU time of the invoking thread (one thread: XNNPACK computes on it), which a
# busy shared machine does not inflate the way it inflates wall time; wall medians are kept beside.
METRICS = ("step_cpu_ms", "step_ms", "invoke_cpu_ms", "invoke_ms")


def compare(models: dict[str, dict], *, rounds: int = 3, frames: int = 50, warmup: int = 10, log=print) -> dict:
    """Time every model in both precisions with tfkit.bench.timing, interleaved, `rounds` times.

    `models`: name -> {"tflite": {"float32": path, "int8": path}, "macs_per_frame": int,
    "input_range": (low, high), "frame_input": name, ...}; one of them named MOVINET. Each timing
    is a fresh process on the same seeded frames; per model and precision the result holds every
    round and the median over rounds of each metric, plus GMAC/s from the bare invoke's CPU time.
    """
    from statistics import median

    from tfkit.bench.timing import TimingConfig, gmacs_per_s, time_stream

    runs: dict[str, dict[str, list[dict]]] = {name: {} for name in models}
    for r in range(rounds):
        for precision in ("float32", "int8"):
            for name, model in models.items():  # interleaved: a load spike hits every model alike
                config = TimingConfig(threads=1, frames=frames, warmup=warmup, seed=0,
                                      input_range=tuple(model["input_range"]), frame_input=model["frame_input"])
                t = time_stream(model["tflite"][precision], config).to_dict()
                runs[name].setdefault(precision, []).append(t)
                log(f"[anchor] round {r + 1}/{rounds} {name} {precision}: step {t['step_ms']:.2f} ms "
                    f"(cpu {t['step_cpu_ms']:.2f}), invoke {t['invoke_ms']:.2f} ms (cpu {t['invoke_cpu_ms']:.2f})")
    out: dict = {}
    for name, by_precision in runs.items():
        out[name] = {}
        for precision, timings in by_precision.items():
            summary = {m: round(median(t[m] for t in timings), 4) for m in METRICS}
            summary["gmacs_per_s"] = round(gmacs_per_s(models[name]["macs_per_frame"], summary["invoke_cpu_ms"]), 3)
            summary["gmacs_per_s_wall"] = round(gmacs_per_s(models[name]["macs_per_frame"], summary["invoke_ms"]), 3)
            if len({t["frames_sha256"] for t in timings}) != 1:  # the helper's contract: same frames
                raise RuntimeError(f"{name} {precision}: the rounds saw different frames")
            out[name][precision] = {**summary, "frames_sha256": timings[0]["frames_sha256"],
                                    "states": timings[0]["states"], "state_values": timings[0]["state_values"],
                                    "rounds": [{m: t[m] for m in (*METRICS, "init_ms", "first_step_ms")}
                                               for t in timings]}
    return out


def ratios(timed: dict, ours: str) -> dict:
    """ours over MoViNet per precision and metric (latency: < 1 is faster) and GMAC/s (> 1 is more
    arithmetic per second)."""
    return {precision: {**{m: round(timed[ours][precision][m] / timed[MOVINET][precision][m], 4) for m in METRICS},
                        "gmacs_per_s": round(timed[ours][precision]["gmacs_per_s"]
                                             / timed[MOVINET][precision]["gmacs_per_s"], 4)}
            for precision in ("float32", "int8")}
