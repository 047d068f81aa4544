#!/usr/bin/env python3
"""What a device is and what state it is in, read where Linux exposes it (/proc and /sys).

One reader for the host and every board: tfkit's `fingerprint` module imports this file, and a
device runs it as a script (`python board_sysinfo.py` prints the fingerprint as one JSON line,
including the interpreter runtimes importable by that very python). runner.py imports it for
measurement hygiene (governor, frequencies, temperatures, charging before and after) and for
energy counters. Stdlib only, Python 3.8 grammar; never imports tfkit.

Everything under /proc and /sys is optional (containers and VMs hide most of it): what cannot be
read is left out or named in an `unavailable` list with the reason, never guessed. Every reader
takes `root` so tests point it at a fake tree.

Example:
    >>> snapshot("/")["unavailable"]  # in a container without cpufreq  # doctest: +SKIP
    ['cpufreq: /sys/devices/system/cpu/cpu*/cpufreq is absent (no cpufreq driver exposed here)']
"""
import glob
import json
import os
import platform
import re
import sys
import time

ROOT = "/"


def _path(root, rel):
    return os.path.join(str(root), rel)


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip("\x00\n ")
    except OSError:
        return None


def _int(path):
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _numbered(pattern, prefix):
    """Paths matching `pattern` whose basename is `prefix` + digits, in numeric order."""
    found = [p for p in glob.glob(pattern) if os.path.basename(p)[len(prefix):].isdigit()]
    return sorted(found, key=lambda p: int(os.path.basename(p)[len(prefix):]))


# --- fingerprint ---------------------------------------------------------------------------------


def cpu_info(root=ROOT):
    # type: (str) -> dict
    """CPU model and SoC from /proc/cpuinfo; board from the device tree or DMI."""
    fields = {}  # type: Dict[str, str]
    for line in (_read(_path(root, "proc/cpuinfo")) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    model = fields.get("model name") or fields.get("cpu model") or fields.get("processor")
    if model is not None and model.isdigit():  # arm64 "processor : 0" is an index, not a model
        model = None
    board = (_read(_path(root, "proc/device-tree/model")) or _read(_path(root, "sys/firmware/devicetree/base/model"))
             or _read(_path(root, "sys/class/dmi/id/product_name")))
    return {"cpu_model": model, "soc": fields.get("hardware"), "board": board}  # None: not exposed, never guessed


def _cpus(root):
    return _numbered(_path(root, "sys/devices/system/cpu/cpu[0-9]*"), "cpu")


def cpu_frequencies(root=ROOT):
    # type: (str) -> List[dict]
    """Per core: max frequency (MHz) and governor, where cpufreq is exposed."""
    out = []
    for core in _cpus(root):
        khz = _int(os.path.join(core, "cpufreq/cpuinfo_max_freq"))
        governor = _read(os.path.join(core, "cpufreq/scaling_governor"))
        if khz is not None or governor is not None:
            out.append({"cpu": int(os.path.basename(core)[3:]), "max_mhz": round(khz / 1000) if khz else None,
                        "governor": governor})
    return out


def thermal_zones(root=ROOT):
    # type: (str) -> List[dict]
    """Each thermal zone's type and temperature (°C), from /sys/class/thermal."""
    out = []
    for zone in _numbered(_path(root, "sys/class/thermal/thermal_zone*"), "thermal_zone"):
        milli = _int(os.path.join(zone, "temp"))
        out.append({"zone": os.path.basename(zone), "type": _read(os.path.join(zone, "type")),
                    "temp_c": round(milli / 1000, 1) if milli is not None else None})
    return out


def power_supplies(root=ROOT):
    # type: (str) -> List[dict]
    """Batteries and mains supplies: level and whether charging, from /sys/class/power_supply."""
    out = []
    for supply in sorted(glob.glob(_path(root, "sys/class/power_supply/*"))):
        kind = _read(os.path.join(supply, "type"))
        entry = {"name": os.path.basename(supply), "type": kind}
        if kind == "Battery":
            status = _read(os.path.join(supply, "status"))
            entry.update(capacity_percent=_int(os.path.join(supply, "capacity")), status=status,
                         charging=status in ("Charging", "Full") if status else None)
        else:
            online = _int(os.path.join(supply, "online"))
            entry["online"] = bool(online) if online is not None else None
        out.append(entry)
    return out


def battery(root=ROOT):
    # type: (str) -> Optional[dict]
    """{"percent", "charging"} of the first battery, or None where there is none."""
    for supply in power_supplies(root):
        if supply["type"] == "Battery":
            return {"percent": supply["capacity_percent"], "charging": supply["charging"]}
    return None


def android_api(root=ROOT):
    # type: (str) -> Optional[int]
    """ro.build.version.sdk from /system/build.prop (None off Android or where it is unreadable)."""
    match = re.search(r"^ro\.build\.version\.sdk=(\d+)", _read(_path(root, "system/build.prop")) or "", re.MULTILINE)
    return int(match.group(1)) if match else None


def _dist_version(module, *dists):
    import importlib.util
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown version"
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return "unknown version"


def runtimes():
    # type: () -> dict
    """The interpreter runtimes (and numpy) importable by this python, found without importing them."""
    return {"python": sys.executable, "python_version": platform.python_version(),
            "ai_edge_litert": _dist_version("ai_edge_litert", "ai-edge-litert", "ai-edge-litert-nightly"),
            "tflite_runtime": _dist_version("tflite_runtime", "tflite-runtime", "tflite-runtime-nightly"),
            "numpy": _dist_version("numpy", "numpy")}


def fingerprint(root=ROOT):
    # type: (str) -> dict
    """This device as `tfkit devices` shows it."""
    freqs = cpu_frequencies(root)
    result = dict(cpu_info(root))
    result.update({
        "abi": platform.machine() or None, "os": platform.system(), "kernel": platform.release(),
        "android_api": android_api(root), "cores": os.cpu_count(),
        "max_mhz": sorted({f["max_mhz"] for f in freqs if f["max_mhz"]}, reverse=True),
        "governors": sorted({f["governor"] for f in freqs if f["governor"]}),
        "cpus": freqs, "thermal": thermal_zones(root), "power": power_supplies(root), "battery": battery(root),
        "runtimes": runtimes(),
    })
    return result


# --- hygiene -------------------------------------------------------------------------------------


def snapshot(root=ROOT):
    # type: (str) -> dict
    """Governor, current and max frequency per CPU, temperatures and charging, right now, with what
    could not be read (and why) in `unavailable`. max_freq_khz is scaling_max_freq, the cap a
    thermal or power limit lowers (cpuinfo_max_freq where that file is absent)."""
    snap = {"governor": {}, "freq_khz": {}, "max_freq_khz": {}, "thermal_c": {}, "battery": None,
            "unavailable": []}  # type: dict
    cpus = _cpus(root)
    missing = []  # type: List[str]
    for core in cpus:
        name, policy = os.path.basename(core), os.path.join(core, "cpufreq")
        if not os.path.isdir(policy):
            missing.append(name)
            continue
        readings = (("governor", _read(os.path.join(policy, "scaling_governor"))),
                    ("freq_khz", _int(os.path.join(policy, "scaling_cur_freq"))),
                    ("max_freq_khz", _int(os.path.join(policy, "scaling_max_freq"))
                     or _int(os.path.join(policy, "cpuinfo_max_freq"))))
        for key, value in readings:
            if value is None:
                snap["unavailable"].append(f"{key}: {policy} has no readable value")
            else:
                snap[key][name] = value
    if not cpus:
        snap["unavailable"].append(f"cpufreq: no CPUs under {_path(root, 'sys/devices/system/cpu')}")
    elif len(missing) == len(cpus):
        snap["unavailable"].append(f"cpufreq: {_path(root, 'sys/devices/system/cpu/cpu*/cpufreq')} is absent "
                                   "(no cpufreq driver exposed here: a container or VM hides it)")
    elif missing:
        snap["unavailable"].append(f"cpufreq: absent for {', '.join(missing)}")
    zones = thermal_zones(root)
    for zone in zones:
        if zone["temp_c"] is None:
            snap["unavailable"].append(f"thermal: {zone['zone']} ({zone['type']}) temp is unreadable")
        else:
            snap["thermal_c"][f"{zone['zone']} ({zone['type']})"] = zone["temp_c"]
    if not zones:
        snap["unavailable"].append(f"thermal: no thermal_zone* under {_path(root, 'sys/class/thermal')}")
    snap["battery"] = battery(root)
    if snap["battery"] is None:
        snap["unavailable"].append(f"battery: no Battery under {_path(root, 'sys/class/power_supply')} "
                                   "(mains powered, or not exposed)")
    return snap


# --- energy --------------------------------------------------------------------------------------


class EnergySource:
    """One real energy reading: a cumulative counter in µJ (RAPL energy_uj, hwmon energy*_input)
    or a power sensor in µW (hwmon power*_input). `read()` samples it; `energy_uj(before, after)`
    turns two samples into µJ spent between them."""

    def __init__(self, label, paths, kind, wrap_uj=None):
        # type: (str, List[str], str, Optional[List[int]]) -> None
        self.label, self.paths, self.kind = label, paths, kind  # kind: "counter_uj" | "power_uw"
        self.wrap_uj = wrap_uj or [None] * len(paths)

    @property
    def source(self):
        # type: () -> str
        return f"{self.label} {'+'.join(self.paths)}"

    def read(self):
        # type: () -> Tuple[float, List[int]]
        """(time.perf_counter(), raw values); raises OSError/ValueError when a file cannot be read."""
        values = []
        for path in self.paths:
            with open(path) as f:
                values.append(int(f.read().strip()))
        return time.perf_counter(), values

    def energy_uj(self, before, after):
        # type: (Tuple[float, List[int]], Tuple[float, List[int]]) -> float
        """µJ between two samples. A counter that went backwards wrapped once at its
        max_energy_range_uj (RAPL counts up to it, then restarts at 0); two wraps inside one timed
        window cannot be seen, so keep windows short of the range (minutes at package power).

        A power sensor (µW) is integrated with the trapezoid over its two real readings, taken
        right before and right after the timed loop: the mean of two real samples, not an estimate
        from a power profile, and only as good as the load is steady in between."""
        (t0, v0), (t1, v1) = before, after
        if self.kind == "power_uw":
            return sum((a + b) / 2.0 for a, b in zip(v0, v1)) * (t1 - t0)
        total = 0.0
        for a, b, wrap in zip(v0, v1, self.wrap_uj):
            delta = b - a
            if delta < 0:
                if not wrap:
                    raise ValueError(f"the counter went backwards ({a} -> {b} µJ) and its wrap range is unknown")
                delta += wrap
            total += delta
        return total


def _rapl(root):
    """Top-level RAPL packages (intel-rapl:N, not their sub-zones intel-rapl:N:M), or (None, why)."""
    base = _path(root, "sys/class/powercap")
    zones = sorted(p for p in glob.glob(os.path.join(base, "intel-rapl:*"))
                   if re.match(r"intel-rapl:\d+$", os.path.basename(p)))
    if not zones:
        return None, f"no RAPL zones under {base}"
    paths, wraps, names = [], [], []
    for zone in zones:
        path = os.path.join(zone, "energy_uj")
        try:
            with open(path) as f:
                int(f.read().strip())
        except PermissionError:
            return None, (f"{path} is readable by root only (Linux restricts RAPL since 5.10): run as root or "
                          f"chmod a+r it")
        except (OSError, ValueError) as e:
            return None, f"{path} is unreadable: {e}"
        paths.append(path)
        wraps.append(_int(os.path.join(zone, "max_energy_range_uj")))
        names.append(_read(os.path.join(zone, "name")) or os.path.basename(zone))
    return EnergySource("rapl:" + "+".join(names), paths, "counter_uj", wraps), None


def _hwmon(root):
    """hwmon energy*_input (µJ counters) first, else power*_input (µW sensors), or (None, why)."""
    base = _path(root, "sys/class/hwmon")
    chips = _numbered(os.path.join(base, "hwmon*"), "hwmon")
    if not chips:
        return None, f"no hwmon chips under {base}"
    for pattern, kind in (("energy*_input", "counter_uj"), ("power*_input", "power_uw")):
        found = []  # (not a whole-package reading, chip, path, label)
        for chip in chips:
            paths = glob.glob(os.path.join(chip, pattern))
            for path in sorted(paths, key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
                if _int(path) is not None:
                    label = _read(path.replace("_input", "_label"))
                    found.append((not re.search(r"socket|package|pkg", label or "", re.IGNORECASE), chip, path, label))
        if found:  # a socket/package reading covers every core; else the first sensor
            _, chip, path, label = min(found, key=lambda f: f[0])
            name = _read(os.path.join(chip, "name")) or os.path.basename(chip)
            unit = "µJ counter" if kind == "counter_uj" else "µW sensor, sampled before and after"
            return EnergySource(f"hwmon:{name}{'/' + label if label else ''} ({unit})", [path], kind), None
    return None, f"no readable energy*_input or power*_input under {base}/hwmon*"


def find_energy_source(root=ROOT):
    # type: (str) -> Tuple[Optional[EnergySource], Optional[str]]
    """The first real energy reading on this device (RAPL, then hwmon), or (None, why there is none)."""
    reasons = []
    for finder in (_rapl, _hwmon):
        source, why = finder(root)
        if source is not None:
            return source, None
        reasons.append(why)
    return None, "; ".join(reasons)


def sample(source):
    """One reading of `source` for energy_per_inference: (time, values), its failure in words, or None."""
    if source is None:
        return None
    try:
        return source.read()
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"


def energy_per_inference(source, why_not, samples, runs):
    # type: (Optional[EnergySource], Optional[str], list, int) -> Tuple[Optional[float], str]
    """(mJ per inference, source label) from two samples taken right before and right after the
    timed runs: a number only from a reading that moved; otherwise None and "unavailable: <why>".
    Never estimated."""
    if source is None:
        return None, "unavailable: " + str(why_not)
    bad = [s for s in samples if not isinstance(s, tuple)]
    if bad:
        return None, f"unavailable: {source.source} could not be read around the timed runs ({bad[0]})"
    try:
        uj = source.energy_uj(samples[0], samples[1])
    except ValueError as e:
        return None, f"unavailable: {source.source}: {e}"
    if uj <= 0:
        ms = (samples[1][0] - samples[0][0]) * 1000.0
        return None, (f"unavailable: {source.source} did not move over the timed runs ({ms:.1f} ms; its update "
                      "interval may be longer): use more --runs")
    return uj / 1000.0 / runs, source.source


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="Print this device's fingerprint (one JSON line).")
    parser.add_argument("--root", default=ROOT, help="read /proc and /sys under this folder (tests)")
    parser.add_argument("--snapshot", action="store_true", help="print a hygiene snapshot instead")
    parser.add_argument("--python-runtimes", action="store_true", help="print only this python's runtimes")
    args = parser.parse_args(argv)
    if args.python_runtimes:
        payload = runtimes()
    else:
        payload = snapshot(args.root) if args.snapshot else fingerprint(args.root)
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
