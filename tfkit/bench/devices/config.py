"""devices.yaml: named devices, each an address plus how to run there.

The file lives in the user config folder (`$XDG_CONFIG_HOME/tfkit/devices.yaml`, by default
`~/.config/tfkit/devices.yaml`) or is given with `--devices FILE`. A mistake names file:line and
the allowed values, as recipe errors do.

Example devices.yaml:
    devices:
      pi5:
        address: ssh:pi@raspberrypi.local
        runtime: tflite_runtime          # auto | litert | tflite_runtime
        python: /home/pi/venv/bin/python
        threads: 4
        cpu_affinity: [4, 5, 6, 7]       # or a taskset mask: "f0"
        delegate: xnnpack                # xnnpack | gpu | nnapi | edgetpu | none
        ssh_config: ~/boards/ssh_config  # ssh devices: `ssh -F FILE` (Host aliases, ProxyJump, ...)
        identity_file: ~/.ssh/id_pi      # ssh devices: `ssh -i FILE`
        workdir: ~/.cache/tfkit          # the device's cache folder (models by sha256, the runner, run folders)
      pixel:
        address: adb:R5CR1234ABC
        benchmark_binary: ~/Downloads/android_aarch64_benchmark_model  # adb: LiteRT's benchmark_model here
        big_cores: [6, 7]                # adb: cores to pin to (default: the fastest cluster), or a mask "c0"
        app_package: tfkit.demo          # adb: the demo app (streaming benchmarks, tfkit flash)
      oldrt:
        address: local
        python: /opt/tflite214/bin/python
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tfkit.bench.devices.address import BUILTIN_KINDS, NAME_PATTERN, DeviceAddress, parse_address
from tfkit.bench.devices.base import Runtime
from tfkit.errors import InputPathError, RecipeError, TfkitError
from tfkit.recipe.schema import _choices, _Where, parse_yaml

ENTRY_KEYS = ("address", "runtime", "python", "threads", "cpu_affinity", "delegate", "ssh_config", "identity_file",
              "workdir", "benchmark_binary", "big_cores", "app_package")
PATH_KEYS = ("ssh_config", "identity_file", "workdir", "benchmark_binary")  # plain path strings; ~ expanded where used
ONLY_FOR = {"ssh_config": "ssh", "identity_file": "ssh", "benchmark_binary": "adb", "big_cores": "adb",
            "app_package": "adb"}  # options that mean something to one device kind only
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_MASK = re.compile(r"(0x)?[0-9A-Fa-f]+")


class DevicesFileError(RecipeError):
    """A devices.yaml that does not fit its schema: file:line, the key, and the allowed values."""


@dataclass(frozen=True)
class DeviceEntry:
    """One named device of devices.yaml. Unset options are None (the command's own defaults apply)."""

    name: str
    address: DeviceAddress
    runtime: Runtime | None = None
    python: str | None = None
    threads: int | None = None
    cpu_affinity: tuple[int, ...] | str | None = None  # core ids, or a taskset mask as written
    delegate: str | None = None
    ssh_config: str | None = None  # a file on this host, passed as `ssh -F`
    identity_file: str | None = None  # a key on this host, passed as `ssh -i`
    workdir: str | None = None  # a folder on the device (default ~/.cache/tfkit there)
    benchmark_binary: str | None = None  # adb: LiteRT's benchmark_model, a file on this host
    big_cores: tuple[int, ...] | str | None = None  # adb: cores benchmark_model is pinned to
    app_package: str | None = None  # adb: the demo app's package (default tfkit.demo)
    source: str = ""  # file:line of the entry

    def bench_defaults(self) -> dict:
        """The benchmark options this entry sets (`threads`, `runtime`), as BenchStepConfig spells them."""
        return {k: v for k, v in (("threads", self.threads), ("runtime", self.runtime and self.runtime.value))
                if v is not None}

    def to_dict(self) -> dict:
        return {"name": self.name, "address": str(self.address),
                "runtime": self.runtime.value if self.runtime else None, "python": self.python,
                "threads": self.threads,
                "cpu_affinity": list(self.cpu_affinity) if isinstance(self.cpu_affinity, tuple) else self.cpu_affinity,
                "delegate": self.delegate, **{k: getattr(self, k) for k in PATH_KEYS},
                "big_cores": list(self.big_cores) if isinstance(self.big_cores, tuple) else self.big_cores,
                "app_package": self.app_package, "source": self.source}


def default_devices_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tfkit" / "devices.yaml"


def load_devices(path: str | os.PathLike | None = None, *, plugin_kinds=()) -> dict[str, DeviceEntry]:
    """The named devices of `path` (default: the user config file, which may be absent: no names).
    A `path` given explicitly must exist."""
    explicit = path is not None
    path = Path(path) if explicit else default_devices_file()
    if not path.is_file():
        if explicit:
            raise InputPathError(f"--devices {path}: no such file. Write one like:\n"
                                 "devices:\n  pi5:\n    address: ssh:pi@raspberrypi.local")
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputPathError(f"{path}: cannot read the devices file ({e})") from None
    try:
        data, where = parse_yaml(text, str(path))
        return check_devices(data, where, plugin_kinds=plugin_kinds)
    except RecipeError as e:  # invalid YAML, a duplicate key or a bad value: file:line either way
        raise DevicesFileError(str(e)) from None


def check_devices(data, where: _Where, *, plugin_kinds=()) -> dict[str, DeviceEntry]:
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) != {"devices"} or not isinstance(data["devices"], dict):
        bad = next((k for k in data if k != "devices"), None) if isinstance(data, dict) else None
        raise where.error((bad,) if bad is not None else (),
                          "a devices file is a mapping `devices:` of NAME: {address: ..., ...}"
                          + (f"; {_choices('key', bad, ['devices'])}" if bad is not None else ""))
    reserved = {*BUILTIN_KINDS, *plugin_kinds}
    entries: dict[str, DeviceEntry] = {}
    for name, raw in data["devices"].items():
        path = ("devices", name)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in reserved:
            why = "is a device kind" if name in reserved else "must start with a letter, then letters, digits, _ . -"
            raise where.error(path, f"device name {name!r} {why}")
        if not isinstance(raw, dict):
            raise where.error(path, f"must be a mapping with keys {', '.join(ENTRY_KEYS)} (address required)")
        for key in raw:
            if key not in ENTRY_KEYS:
                raise where.error((*path, key), _choices("key", key, ENTRY_KEYS))
        if "address" not in raw:
            raise where.error(path, "missing `address` (e.g. ssh:pi@raspberrypi.local, adb:SERIAL, local)")
        entries[name] = _entry(name, raw, path, where, plugin_kinds)
    return entries


def _entry(name: str, raw: dict, path: tuple, where: _Where, plugin_kinds) -> DeviceEntry:
    def at(key):
        return (*path, key)

    address_text = raw["address"]
    if not isinstance(address_text, str) or address_text.partition(":")[0] not in {*BUILTIN_KINDS, *plugin_kinds}:
        raise where.error(at("address"), f"{address_text!r} is not a device address; give local, "
                                         "ssh:[USER@]HOST[:PORT] or adb[:SERIAL] (names cannot point to names)")
    try:
        address = parse_address(address_text, plugin_kinds=plugin_kinds)
    except TfkitError as e:
        raise where.error(at("address"), str(e)) from None
    runtime = raw.get("runtime")
    if runtime is not None and runtime not in [r.value for r in Runtime]:
        raise where.error(at("runtime"), _choices("runtime", runtime, [r.value for r in Runtime]))
    python = raw.get("python")
    if python is not None and (not isinstance(python, str) or not python.strip()):
        raise where.error(at("python"), f"must be the path of the device's python, got {python!r}")
    threads = raw.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise where.error(at("threads"), f"must be an integer >= 1, got {threads!r}")
    affinity = _affinity(raw.get("cpu_affinity"), at("cpu_affinity"), where)
    delegate = raw.get("delegate")
    if delegate is not None:
        from tfkit.delegates import delegate_names

        allowed = [*delegate_names(), "none"]
        if delegate not in allowed:
            raise where.error(at("delegate"), _choices("delegate", delegate, allowed))
    for key, kind in ONLY_FOR.items():
        if raw.get(key) is not None and address.kind != kind:
            raise where.error(at(key), f"`{key}` applies to {kind} devices only; this address is {address}")
    paths = {}
    for key in PATH_KEYS:
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise where.error(at(key), f"must be a path, got {value!r}")
        paths[key] = value
    package = raw.get("app_package")
    if package is not None and (not isinstance(package, str) or not _PACKAGE.fullmatch(package)):
        raise where.error(at("app_package"), f"must be an Android package name such as tfkit.demo, got {package!r}")
    paths["app_package"] = package
    paths["big_cores"] = _affinity(raw.get("big_cores"), at("big_cores"), where)
    line = where.lines.get(path)
    return DeviceEntry(name=name, address=address, runtime=Runtime(runtime) if runtime else None, python=python,
                       threads=threads, cpu_affinity=affinity, delegate=delegate, **paths,
                       source=f"{where.source}:{line}" if line else where.source)


def _affinity(value, path: tuple, where: _Where):
    if value is None:
        return None
    if isinstance(value, str):
        if not _MASK.fullmatch(value) or int(value, 16) == 0:
            raise where.error(path, f"{value!r} is not a taskset mask; give a hex mask such as \"f0\" or a list "
                                    "of core ids such as [4, 5, 6, 7]")
        return value
    if (isinstance(value, list) and value and len(set(map(repr, value))) == len(value)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value)):
        return tuple(value)
    raise where.error(path, f"must be a list of distinct core ids (integers >= 0), e.g. [4, 5, 6, 7], or a taskset "
                            f"mask such as \"f0\"; got {value!r}")
