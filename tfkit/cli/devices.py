"""`tfkit devices`: this host and each device of devices.yaml, with what it is or why it cannot be reached.

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


def summary(fp: dict) -> str:
    """One line: what the device is, its cores and clocks, kernel, runtimes, temperatures, battery."""
    parts = [fp.get("board") or fp.get("soc") or fp.get("cpu_model") or "unknown CPU"]
    if fp.get("board") and fp.get("cpu_model"):
        parts[0] += f" ({fp['cpu_model']})"
    parts.append(f"{fp.get('cores')} cores, {fp.get('abi')}, {fp.get('os')} {fp.get('kernel')}")
    if fp.get("max_mhz"):
        parts.append("max " + "/".join(str(m) for m in fp["max_mhz"]) + " MHz")
    parts.append("governor " + ("/".join(fp["governors"]) if fp.get("governors") else "not exposed"))
    temps = [f"{z['type'] or z['zone']} {z['temp_c']}°C" for z in fp.get("thermal") or () if z.get("temp_c") is not None]
    parts.append("thermal " + (", ".join(temps) if temps else "not exposed"))
    for b in (p for p in fp.get("power") or () if p.get("type") == "Battery"):
        parts.append(f"battery {b.get('capacity_percent')}% {b.get('status') or ''}".rstrip())
    rt = fp.get("runtimes") or {}
    have = [f"{label} {rt[key]}" for key, label in (("ai_edge_litert", "ai-edge-litert"),
                                                    ("tflite_runtime", "tflite-runtime"), ("numpy", "numpy"))
            if rt.get(key)]
    parts.append(f"python {rt.get('python_version')}: " + (", ".join(have) if have else "no interpreter runtime"))
    return "; ".join(parts)


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {name, address, reachable, fingerprint, "
                                                      "reason} instead of text.")
@click.option("--devices", "devices_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The devices file (default: $XDG_CONFIG_HOME/tfkit/devices.yaml, else "
                   "~/.config/tfkit/devices.yaml).")
def devices(as_json: bool, devices_file: Path | None):
    """List this host (`local`) and each device of devices.yaml: its fingerprint, or why it cannot be reached."""
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
