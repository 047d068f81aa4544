"""From an address to a Device: the kinds registry (built-ins plus third-party kinds from the
`tfkit.devices` entry-point group) and the one function every `--device` goes through.

A plug-in package declares, in its pyproject.toml:
    [project.entry-points."tfkit.devices"]
    jetson = "my_pkg.jetson:JetsonDevice"   # a Device subclass; addresses `jetson` or `jetson:TARGET`

Example:
    >>> open_device("local").name
    'local'
    >>> open_device("ssh:pi@board").name
    'ssh:pi@board'
    >>> open_device("adb:R58M").name
    'adb:R58M'
    >>> open_device("jetson:nano")  # doctest: +SKIP
    UsageError: Bad device address 'jetson:nano': unknown device kind 'jetson' (known: local, ssh, adb) ...
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from tfkit.bench.devices.address import BUILTIN_KINDS, DeviceAddress, parse_address
from tfkit.bench.devices.base import DEVICES, Device, runner_script
from tfkit.bench.devices.config import DeviceEntry, load_devices
from tfkit.errors import UnsupportedDeviceError

ENTRY_POINT_GROUP = "tfkit.devices"

# Kinds the address grammar knows but this version cannot run on yet: what to do instead. Empty
# today (local, ssh and adb all run); a kind named in devices.yaml by a plug-in that is no longer
# installed gets the generic reason below.
NOT_IMPLEMENTED: dict[str, str] = {}


def _load_plugins() -> None:
    """Register device kinds that installed packages declare under `tfkit.devices`; a plug-in cannot
    take over a built-in kind's name (`ssh`, `adb`)."""
    DEVICES.load_plugins(ENTRY_POINT_GROUP, Device, reserved=BUILTIN_KINDS)


def device_kinds() -> list[str]:
    """Kinds that can run benchmarks now (`local`, `ssh`, `adb` and plug-ins)."""
    import tfkit.bench.devices  # noqa: F401  (registers the built-ins)

    _load_plugins()
    return DEVICES.names()


def plugin_kinds() -> list[str]:
    return [k for k in device_kinds() if k not in BUILTIN_KINDS]


@dataclass(frozen=True)
class Resolved:
    """An address with its devices.yaml entry (None when given bare)."""

    address: DeviceAddress
    entry: DeviceEntry | None = None


def resolve(text: str | DeviceAddress, *, devices_file: str | os.PathLike | None = None) -> Resolved:
    """Parse `text` (an address or a devices.yaml NAME) without opening anything."""
    if isinstance(text, DeviceAddress):
        return Resolved(text)
    kinds = plugin_kinds()
    # The devices file is only read for a bare name, so `--device local` never fails on a broken file.
    head = text.partition(":")[0] if isinstance(text, str) else ""
    named = isinstance(text, str) and ":" not in text and head not in (*BUILTIN_KINDS, *kinds)
    entries = load_devices(devices_file, plugin_kinds=kinds) if named else {}
    address = parse_address(text, names={n: e.address for n, e in entries.items()}, plugin_kinds=kinds)
    return Resolved(address, entries.get(address.name) if address.name else None)


def unsupported_reason(address: DeviceAddress) -> str | None:
    """Why this tfkit cannot run on `address`, or None when it can."""
    if address.kind in device_kinds():
        return None
    reason = NOT_IMPLEMENTED.get(address.kind, f"no installed device kind {address.kind!r} (a plug-in package that "
                                               "registers it under the `tfkit.devices` entry points is missing)")
    return reason.format(runner=runner_script())


def check_runnable(resolved: Resolved) -> Resolved:
    reason = unsupported_reason(resolved.address)
    if reason is not None:
        label = f"{resolved.address.name} ({resolved.address})" if resolved.address.name else str(resolved.address)
        raise UnsupportedDeviceError(f"{label}: {reason}.")
    return resolved


def open_device(text: str | DeviceAddress, *, devices_file: str | os.PathLike | None = None) -> Device:
    """The Device for an address or name; one UsageError for a malformed or unsupported one."""
    resolved = check_runnable(resolve(text, devices_file=devices_file))
    device = DEVICES.get(resolved.address.kind).from_address(resolved.address, resolved.entry)
    device.address = resolved.address  # what it was opened as (a devices.yaml name keeps its name here)
    return device
