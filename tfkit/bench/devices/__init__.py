"""Where benchmarks run. `DEVICES.get(name)()` gives a Device; each module registers itself.
Addresses (`local`, `ssh:...`, `adb[:SERIAL]`, devices.yaml names) go through `kinds.open_device`, which
also loads third-party kinds from the `tfkit.devices` entry-point group.

Example:
    >>> from tfkit.bench.devices import DEVICES
    >>> DEVICES.names()
    ['adb', 'local', 'ssh']
"""
from tfkit.bench.devices import local as _local  # noqa: F401 - registers "local"
from tfkit.bench.devices import phone as _phone  # noqa: F401 - registers "adb"
from tfkit.bench.devices import ssh as _ssh  # noqa: F401 - registers "ssh"
from tfkit.bench.devices.base import (
    DEVICES,
    BenchConfig,
    Device,
    Runtime,
    runner_args,
    runner_files,
    runner_script,
)

__all__ = ["DEVICES", "BenchConfig", "Device", "Runtime", "runner_args", "runner_files", "runner_script"]
