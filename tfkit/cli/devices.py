"""`tfkit devices`: this host, each device of devices.yaml, and each phone attached to adb, with what it
is or why it cannot be reached (an unauthorized or offline phone is listed with what to do).

Example:
    $ tfkit devices --json
    [{"name": "local", "address": "local", "reachable": true, "fingerprint": {"cores": 8, ...}, ...}]
"""
from __future__ import annotations

import json
from pathlib import Path

import click


def device_rows(devices_file: Path | None = None) -> list[dict]:
    """`local` first, then each configured device: reachable with its fingerprint, or the reason not."""
    from tfkit.bench.devices.address import DeviceAddress
    from tfkit.bench.devices.config import load_devices
    from tfkit.bench.devices.kinds import Resolved, plugin_kinds

    entries = load_devices(devices_file, plugin_kinds=plugin_kinds())
    rows = [_row(Resolved(DeviceAddress("local")), name="local")]
    rows += [_row(Resolved(e.address, e), name=n) for n, e in entries.items()]
    configured = {e.address.serial for e in entries.values() if e.address.kind == "adb"}
    return rows + [row for row in attached_phones() if row["address"][4:] not in configured]


def attached_phones() -> list[dict]:
    """A row per phone the adb server knows (not already named in devices.yaml): usable ones with their
    fingerprint, the others (unauthorized, offline, no permissions) with what to do. No adb on this
    host, or a server that does not answer: no rows (adb is only needed for phones)."""
    from tfkit.bench.devices.adb import find_adb, list_adb_devices
    from tfkit.bench.devices.address import DeviceAddress
    from tfkit.bench.devices.kinds import Resolved
    from tfkit.errors import TfkitError

    try:
        find_adb()
        phones = list_adb_devices()
    except TfkitError:
        return []
    rows = []
    for phone in phones:
        address = DeviceAddress("adb", serial=phone.serial)
        if phone.state == "device":
            row = _row(Resolved(address), name=str(address))
        else:
            row = {"name": str(address), "address": str(address), "reachable": False, "fingerprint": None,
                   "reason": f"{phone.state}: {phone.hint}"}
        rows.append({**row, "adb": {"state": phone.state, **phone.details}})
    return rows


def _row(resolved, *, name: str) -> dict:
    from tfkit.bench.devices.base import DEVICES
    from tfkit.bench.devices.kinds import unsupported_reason
    from tfkit.errors import TfkitError

    row = {"name": name, "address": str(resolved.address), "reachable": False, "fingerprint": None, "reason": None}
    if resolved.entry is not None:
        row["options"] = {k: v for k, v in resolved.entry.to_dict().items() if k not in ("name", "address")}
    row["reason"] = unsupported_reason(resolved.address)
    if row["reason"] is not None:
        return row
    try:
        device = DEVICES.get(resolved.address.kind).from_address(resolved.address, resolved.entry)
        row["fingerprint"] = device.fingerprint()
        row["reachable"] = True
    except TfkitError as e:
        row["reason"] = str(e)
    except Exception as e:  # noqa: BLE001  (a plug-in's fingerprint bug: listed with its words, not a crash)
        row["reason"] = f"the {resolved.address.kind} device kind failed to describe the device: {e!r}"
    return row


def summary(fp: object) -> str:
    """One line: what the device is, its cores and clocks, kernel (or Android API), governor,
    temperatures, battery, runtimes. Any fingerprint shape a device kind returns reads as text:
    a missing or odd field is shown as not exposed, never a crash."""
    from tfkit.report.table import fingerprint_summary

    head = fingerprint_summary(fp)
    if not isinstance(fp, dict) or fp.get("error") is not None:
        return head["CPU / board"]
    parts = [head["CPU / board"], f"{head['cores']} cores, {head['kernel / API']}"]
    android = fp.get("os") == "Android"
    if android:  # a phone: its name first, clusters (little to big) instead of one max
        parts[0] = " ".join(str(fp[k]) for k in ("manufacturer", "model") if fp.get(k)) + f" ({head['CPU / board']})"
        clusters = [c for c in _list(fp.get("clusters")) if isinstance(c, dict)]
        if clusters:
            parts.append("cores " + " + ".join(f"{len(_list(c.get('cpus')))}x{c.get('max_mhz')} MHz" for c in clusters))
    elif head["max MHz"] != "not exposed":
        parts.append(f"max {head['max MHz']} MHz")
    parts.append(f"governor {head['governor']}")
    zones = [z for z in _list(fp.get("thermal")) if isinstance(z, dict) and z.get("temp_c") is not None]
    temps = [f"{z.get('type') or z.get('zone')} {z['temp_c']}°C" for z in zones]
    parts.append("thermal " + (", ".join(temps) if temps else "not exposed"))
    battery = fp.get("battery")
    if isinstance(battery, dict) and battery.get("percent") is not None:
        charging = {True: " charging", False: " not charging"}.get(battery.get("charging"), "")
        parts.append(f"battery {battery['percent']}%{charging}")
    else:
        for b in (p for p in _list(fp.get("power")) if isinstance(p, dict) and p.get("type") == "Battery"):
            parts.append(f"battery {b.get('capacity_percent')}% {b.get('status') or ''}".rstrip())
    if android:  # no python on a phone: LiteRT's benchmark_model (and the demo app) run there
        return "; ".join(parts)
    rt = fp.get("runtimes") if isinstance(fp.get("runtimes"), dict) else {}
    have = [f"{label} {rt[key]}" for key, label in (("ai_edge_litert", "ai-edge-litert"),
                                                    ("tflite_runtime", "tflite-runtime"), ("numpy", "numpy"))
            if rt.get(key)]
    parts.append(f"python {rt.get('python_version')}: " + (", ".join(have) if have else "no interpreter runtime"))
    return "; ".join(parts)


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {name, address, reachable, fingerprint, "
                                                      "reason} instead of text.")
@click.option("--devices", "devices_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The devices file (default: $XDG_CONFIG_HOME/tfkit/devices.yaml, else "
                   "~/.config/tfkit/devices.yaml).")
def devices(as_json: bool, devices_file: Path | None):
    """List this host (`local`), each device of devices.yaml and each phone attached to adb: its fingerprint,
    or why it cannot be reached and what to do."""
    rows = device_rows(devices_file)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        label = row["name"] if row["name"] == row["address"] else f"{row['name']} ({row['address']})"
        if row["reachable"]:
            click.echo(f"{label}: {summary(row['fingerprint'])}")
        else:
            click.echo(f"{label}: not reachable: {row['reason']}")
