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
) -> tuple[dict | None, str | None]:
    """(result dict as movinet_anchor.py writes it, None) or (None, why it could not be measured)."""
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
