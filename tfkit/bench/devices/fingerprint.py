"""What this host is, read where Linux exposes it: CPU model, board, ABI, kernel, cores, max
frequencies and governors, thermal zones, battery, and the interpreter runtimes a given python has.

Everything under /proc and /sys is optional (containers and VMs hide most of it): what cannot be
read is left out, never guessed. `root` lets tests point the readers at a fake tree.

Example:
    >>> host_fingerprint()["cores"] == os.cpu_count()
    True
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from tfkit.errors import ToolNotFoundError

ROOT = Path("/")
RUNTIME_PROBE_TIMEOUT_S = 30.0

# Run by the python that would run runner.py: which runtimes it could import, found without importing
# them (find_spec + the installed distribution's version), so a probe costs milliseconds.
_PROBE = """
import importlib.metadata as m, importlib.util as u, json, platform, sys
def version(mod, *dists):
    if u.find_spec(mod) is None:
        return None
    for d in dists:
        try:
            return m.version(d)
        except m.PackageNotFoundError:
            pass
    return "unknown version"
print(json.dumps({"python": sys.executable, "python_version": platform.python_version(),
                  "ai_edge_litert": version("ai_edge_litert", "ai-edge-litert", "ai-edge-litert-nightly"),
                  "tflite_runtime": version("tflite_runtime", "tflite-runtime", "tflite-runtime-nightly"),
                  "numpy": version("numpy", "numpy")}))
"""


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cpu_info(root: Path = ROOT) -> dict:
    """CPU model and SoC from /proc/cpuinfo; board from the device tree or DMI."""
    fields: dict[str, str] = {}
    for line in (_read(root / "proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    model = fields.get("model name") or fields.get("cpu model") or fields.get("processor")
    if model is not None and model.isdigit():  # arm64 "processor : 0" is an index, not a model
        model = None
    board = (_read(root / "proc/device-tree/model") or _read(root / "sys/firmware/devicetree/base/model")
             or _read(root / "sys/class/dmi/id/product_name"))
    return {"cpu_model": model, "soc": fields.get("hardware"), "board": board}  # None: not exposed, never guessed


def cpu_frequencies(root: Path = ROOT) -> list[dict]:
    """Per core: max frequency (MHz) and governor, where cpufreq is exposed."""
    base = root / "sys/devices/system/cpu"
    cores = sorted((p for p in base.glob("cpu[0-9]*") if p.name[3:].isdigit()), key=lambda p: int(p.name[3:]))
    out = []
    for core in cores:
        khz = _int(core / "cpufreq/cpuinfo_max_freq")
        governor = _read(core / "cpufreq/scaling_governor")
        if khz is not None or governor is not None:
            out.append({"cpu": int(core.name[3:]), "max_mhz": round(khz / 1000) if khz else None,
                        "governor": governor})
    return out


def thermal_zones(root: Path = ROOT) -> list[dict]:
    """Each thermal zone's type and temperature (°C), from /sys/class/thermal."""
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"),
                   key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    out = []
    for zone in zones:
        milli = _int(zone / "temp")
        out.append({"zone": zone.name, "type": _read(zone / "type"),
                    "temp_c": round(milli / 1000, 1) if milli is not None else None})
    return out


def power_supplies(root: Path = ROOT) -> list[dict]:
    """Batteries and mains supplies: level and whether charging, from /sys/class/power_supply."""
    out = []
    for supply in sorted((root / "sys/class/power_supply").glob("*")):
        kind = _read(supply / "type")
        entry = {"name": supply.name, "type": kind}
        if kind == "Battery":
            status = _read(supply / "status")
            entry.update(capacity_percent=_int(supply / "capacity"), status=status,
                         charging=status in ("Charging", "Full") if status else None)
        else:
            online = _int(supply / "online")
            entry["online"] = bool(online) if online is not None else None
        out.append(entry)
    return out


def runtimes(python: str | os.PathLike | None = None) -> dict:
    """The interpreter runtimes (and numpy) importable by `python`, the one that would run runner.py."""
    python = os.fspath(python) if python is not None else sys.executable
    try:
        proc = subprocess.run([python, "-c", _PROBE], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=RUNTIME_PROBE_TIMEOUT_S, check=False)
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
        raise ToolNotFoundError(f"the device's python {python!r} failed to report its runtimes "
                                f"(exit {proc.returncode}: {last})")
    return found


def host_fingerprint(*, python: str | os.PathLike | None = None, root: Path = ROOT) -> dict:
    """This host as `tfkit devices` shows it."""
    freqs = cpu_frequencies(root)
    return {
        **cpu_info(root),
        "abi": platform.machine() or None,
        "os": platform.system(),
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "max_mhz": sorted({f["max_mhz"] for f in freqs if f["max_mhz"]}, reverse=True),
        "governors": sorted({f["governor"] for f in freqs if f["governor"]}),
        "cpus": freqs,
        "thermal": thermal_zones(root),
        "power": power_supplies(root),
        "runtimes": runtimes(python),
    }
