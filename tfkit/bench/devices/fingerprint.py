"""What this host is: the same reader a board runs (`tfkit/bench/board/board_sysinfo.py`), so
`tfkit devices` shows `local` and a board the same way.

`host_fingerprint(python=...)` runs board_sysinfo.py as a script under the python that would run
runner.py, so the runtimes it reports are the ones that python can import. The /proc and /sys
readers are re-exported from there for callers on this host.

Example:
    >>> host_fingerprint()["cores"] == os.cpu_count()
    True
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tfkit.bench.board import board_sysinfo
from tfkit.bench.board.board_sysinfo import (  # noqa: F401  (re-exported: the readers live on the board side)
    battery,
    cpu_frequencies,
    cpu_info,
    find_energy_source,
    power_supplies,
    snapshot,
    thermal_zones,
)
from tfkit.errors import ToolNotFoundError

ROOT = Path("/")
RUNTIME_PROBE_TIMEOUT_S = 30.0


def sysinfo_script() -> Path:
    """The board-side reader, run as a script on the device (or here) to fingerprint it."""
    return Path(board_sysinfo.__file__).resolve()


def _run_sysinfo(python: str, *args: str) -> dict:
    try:
        proc = subprocess.run([python, str(sysinfo_script()), *args], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=RUNTIME_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolNotFoundError(f"cannot run the device's python {python!r} ({e}); fix `python:` in devices.yaml "
                                "or install Python there") from None
    lines = proc.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ToolNotFoundError(f"the device's python {python!r} failed to report its fingerprint "
                                f"(exit {proc.returncode}: {last})")
    return found


def runtimes(python: str | os.PathLike | None = None) -> dict:
    """The interpreter runtimes (and numpy) importable by `python`, the one that would run runner.py."""
    return _run_sysinfo(os.fspath(python) if python is not None else sys.executable, "--python-runtimes")


def host_fingerprint(*, python: str | os.PathLike | None = None, root: Path = ROOT) -> dict:
    """This host as `tfkit devices` shows it, read by board_sysinfo.py under `python`."""
    return _run_sysinfo(os.fspath(python) if python is not None else sys.executable, "--root", os.fspath(root))
