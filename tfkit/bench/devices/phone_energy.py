"""Energy per inference on a phone, from a real reading or not at all.

Sources are tried in order of preference; each says whether it applies to this phone right now:
- `odpm`: the On-Device Power Monitor rails, read from the power-stats HAL dump
  (`dumpsys android.hardware.power.stats.IPowerStats/default`, section "PowerStats HAL 2.0 energy
  meter": cumulative energy per rail in mWs). Pixels 6 and later have them.
- `battery`: the fuel gauge's current x voltage from /sys/class/power_supply/battery, sampled on
  the phone while the model runs, only while the phone runs on its battery (a charger's current
  would be counted), signs and units normalised (µA or mA, µV or mV, as vendors differ).
- else `None`, with the reason (never estimated: `dumpsys batterystats` is a power model fed with
  time-in-state counters, not a measurement, and is never read).

Both real sources subtract an idle baseline measured just before the run: energy per inference is
(mean power while benchmark_model ran - mean idle power) x the mean inference time. The run window
holds the model load and warm-up too, so this is the average active power over the process, times
the time of one inference; `energy_source` says so.

A source is a class registered in `PHONE_ENERGY` (by name; `priority` orders them), with shell
fragments run on the phone around the benchmark (`begin`, `end`: one round trip with the run) and
a host-side reader of what they printed; another device kind can register its own.

Example:
    >>> source, why = choose(probe_text)             # doctest: +SKIP
    >>> source.energy(begin_text, end_text, latency_ms=12.5)   # doctest: +SKIP
    (3.1, 'odpm: ... rails ...')
"""
from __future__ import annotations

import abc
import re
import statistics

from tfkit.bench.parse import UNAVAILABLE
from tfkit.registry import Registry

IDLE_S = 1.0  # the idle baseline's length, before each run
SAMPLE_S = 0.05  # the battery sampler's period
POWER_STATS = "android.hardware.power.stats.IPowerStats/default"
BATTERY = "/sys/class/power_supply/battery"
METER_HEADER = "PowerStats HAL 2.0 energy meter"
_METER_ROW = re.compile(r"^\s*(?P<rail>\S.*?)\s+(?P<mws>-?\d+(?:\.\d+)?) mWs(?:\s+\(\s*-?\d+(?:\.\d+)?\))?\s*$")

# One round trip before the first run: what this phone offers.
PROBE = rf"""
if dumpsys {POWER_STATS} 2>/dev/null | grep -q '{METER_HEADER}'; then echo odpm=yes; else echo odpm=no; fi
for f in current_now voltage_now status; do
  [ -r {BATTERY}/$f ] && printf 'battery_%s=%s\n' "$f" "$(cat {BATTERY}/$f 2>/dev/null)"
done
for s in /sys/class/power_supply/*; do
  [ "$(cat "$s/type" 2>/dev/null)" = Battery ] || printf 'online_%s=%s\n' "${{s##*/}}" "$(cat "$s/online" 2>/dev/null)"
done
exit 0
"""

PHONE_ENERGY: Registry[type[PhoneEnergySource]] = Registry("phone energy source")


def _fields(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _uptimes(text: str) -> list[float]:
    return [float(line[7:].split()[0]) for line in text.splitlines() if line.startswith("uptime=")]


def plugged_in(fields: dict[str, str]) -> str | None:
    """Why the phone is not on its battery (a charger online, or the battery charging/full), else None."""
    online = [k[7:] for k, v in fields.items() if k.startswith("online_") and v.strip() == "1"]
    if online:
        return f"the phone is plugged in ({', '.join(sorted(online))} online)"
    status = fields.get("battery_status", "").strip()
    if status in ("Charging", "Full"):
        return f"the battery is {status.lower()} (a charger is connected)"
    return None


class PhoneEnergySource(abc.ABC):
    """One way of measuring a phone's energy. `applies` reads the probe; `begin`/`end` are shell
    fragments (they print what `energy` reads; `$run` is a scratch folder on the phone)."""

    name: str = "source"
    priority: int = 100  # lower is tried first

    @abc.abstractmethod
    def applies(self, probe: dict[str, str]) -> str | None:
        """None when this source can measure this phone, else why not."""

    @abc.abstractmethod
    def begin(self) -> str: ...

    @abc.abstractmethod
    def end(self) -> str: ...

    @abc.abstractmethod
    def energy(self, begin: str, end: str, *, latency_ms: float) -> tuple[float | None, str]:
        """(mJ per inference, source text) or (None, "unavailable: why")."""


def parse_energy_meter(text: str) -> dict[str, float]:
    """The power-stats HAL dump's energy-meter section as {rail: cumulative mWs}.

    Example:
        >>> parse_energy_meter(dump)["[S4M_VDD_CPUCL0]:CPU(LITTLE)"]   # doctest: +SKIP
        165311.69
    """
    rails, inside = {}, False
    for line in text.replace("\r\n", "\n").splitlines():
        if METER_HEADER in line:
            inside = "End of" not in line
            continue
        if inside and (row := _METER_ROW.match(line)) and row["rail"] != "Channel":
            rails[row["rail"]] = float(row["mws"])
    return rails


def _active_mj(idle_mw: float, run_mw: float, latency_ms: float) -> float:
    return (run_mw - idle_mw) * latency_ms / 1000.0  # mW x ms = µJ; / 1000 = mJ


@PHONE_ENERGY.register("odpm")
class OdpmSource(PhoneEnergySource):
    """The power rails of the On-Device Power Monitor (sum over all rails), idle baseline subtracted."""

    name, priority = "odpm", 10
    _SNAP = f"printf 'uptime=%s\\n' \"$(cat /proc/uptime)\"; dumpsys {POWER_STATS}"

    def applies(self, probe):
        return None if probe.get("odpm") == "yes" else f"no power rails ({POWER_STATS} has no energy meter)"

    def begin(self):
        return f"{self._SNAP}; sleep {IDLE_S:g}; {self._SNAP}"

    def end(self):
        return self._SNAP

    def energy(self, begin, end, *, latency_ms):
        parts = [p for p in re.split(r"(?m)^(?=uptime=)", begin + "\n" + end) if p.startswith("uptime=")]
        if len(parts) != 3:
            return None, f"{UNAVAILABLE}: the power-stats dump was not read three times ({len(parts)})"
        times = [_uptimes(p)[0] for p in parts]
        meters = [parse_energy_meter(p) for p in parts]
        rails = sorted(set(meters[0]) & set(meters[1]) & set(meters[2]))
        if not rails:
            return None, f"{UNAVAILABLE}: the power-stats dump lists no energy-meter rails"
        totals = [sum(m[r] for r in rails) for m in meters]
        if times[1] <= times[0] or times[2] <= times[1]:
            return None, f"{UNAVAILABLE}: the phone's clock did not advance between readings"
        idle = (totals[1] - totals[0]) / (times[1] - times[0])  # mWs / s = mW
        run = (totals[2] - totals[1]) / (times[2] - times[1])
        if idle < 0 or run < 0:
            return None, f"{UNAVAILABLE}: a rail counter went backwards (reset or wrapped)"
        return _active_mj(idle, run, latency_ms), (
            f"odpm: {len(rails)} power rails ({POWER_STATS}), mean power while benchmark_model ran "
            f"{run:.1f} mW - idle {idle:.1f} mW over {times[1] - times[0]:.1f} s, x mean inference time")


@PHONE_ENERGY.register("battery")
class BatterySource(PhoneEnergySource):
    """Battery current x voltage, sampled on the phone; only while it runs on its battery."""

    name, priority = "battery", 50
    _READ = (f"while :; do read -r c < {BATTERY}/current_now; read -r v < {BATTERY}/voltage_now; "
             f"echo \"s $c $v\"; sleep {SAMPLE_S:g}; done")
    _STATE = ("for s in /sys/class/power_supply/*; do [ \"$(cat \"$s/type\" 2>/dev/null)\" = Battery ] || "
              "printf 'online_%s=%s\\n' \"${s##*/}\" \"$(cat \"$s/online\" 2>/dev/null)\"; done; "
              f"printf 'battery_status=%s\\n' \"$(cat {BATTERY}/status 2>/dev/null)\"")

    def applies(self, probe):
        why = plugged_in(probe)
        if why:
            return f"{why}: the charger's current would be counted; unplug it (adb over Wi-Fi) to measure"
        if "battery_current_now" not in probe or "battery_voltage_now" not in probe:
            return f"no battery current/voltage readings ({BATTERY}/current_now, voltage_now)"
        return None

    def begin(self):
        return (f"{self._STATE}; ( {self._READ} ) > \"$run/idle\" & p=$!; sleep {IDLE_S:g}; kill $p; "
                f"wait $p 2>/dev/null; cat \"$run/idle\"; echo '--'; ( {self._READ} ) > \"$run/load\" & sampler=$!")

    def end(self):
        return f"kill $sampler; wait $sampler 2>/dev/null; cat \"$run/load\"; {self._STATE}"

    def energy(self, begin, end, *, latency_ms):
        for text in (begin, end):
            why = plugged_in(_fields(text))
            if why:
                return None, f"{UNAVAILABLE}: {why} during the run; battery readings count the charger"
        idle_text = begin.partition("\n--\n")[0]
        idle, load = _powers_mw(idle_text), _powers_mw(end)
        if not idle or not load:
            return None, (f"{UNAVAILABLE}: too few battery samples ({len(idle)} idle, {len(load)} while running; "
                          f"{BATTERY}/current_now unreadable, or the run was shorter than {SAMPLE_S:g} s)")
        signs = {s for s, _ in idle + load if s}
        if len(signs) > 1:
            return None, f"{UNAVAILABLE}: the battery current changed sign (charging and discharging mixed)"
        idle_mw = statistics.fmean(p for _, p in idle)
        run_mw = statistics.fmean(p for _, p in load)
        return _active_mj(idle_mw, run_mw, latency_ms), (
            f"battery: {BATTERY} current x voltage, {len(load)} samples while benchmark_model ran "
            f"({run_mw:.0f} mW) - {len(idle)} idle samples ({idle_mw:.0f} mW), x mean inference time")


def _powers_mw(text: str) -> list[tuple[int, float]]:
    """(sign of the current, power in mW) per `s CURRENT VOLTAGE` line. Vendors report µA or mA and
    µV or mV, discharging as positive or negative: normalised by magnitude (a phone draws 10 mA-10 A,
    a cell sits at 2.5-5 V)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] != "s":
            continue
        try:
            current, voltage = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        amps = abs(current) / (1e6 if abs(current) >= 20_000 else 1e3)  # µA, else mA
        volts = voltage / (1e6 if voltage >= 100_000 else 1e3)  # µV, else mV
        if not 2.5 <= volts <= 5.5:
            continue
        out.append(((current > 0) - (current < 0), amps * volts * 1000))
    return out


def choose(probe_text: str, *, kind: str = "adb") -> tuple[PhoneEnergySource | None, str]:
    """The preferred source that applies to this phone, or (None, "unavailable: why each does not")."""
    probe = _fields(probe_text)
    reasons = []
    sources = sorted((PHONE_ENERGY.get(n) for n in PHONE_ENERGY.names()), key=lambda s: s.priority)
    for cls in sources:
        if kind not in getattr(cls, "kinds", ("adb",)):
            continue
        why = cls().applies(probe)
        if why is None:
            return cls(), ""
        reasons.append(f"{cls.name}: {why}")
    return None, f"{UNAVAILABLE}: " + "; ".join(reasons)
