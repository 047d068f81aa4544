"""Device addresses (one parser), devices.yaml (file:line errors), device-kind plug-ins, and the
host fingerprint readers on a fake /proc + /sys tree."""
from __future__ import annotations

import os
import sys
import textwrap
import warnings

import pytest

from tests.helpers import install_plugin
from tfkit.bench.devices import kinds
from tfkit.bench.devices.address import DeviceAddress, parse_address
from tfkit.bench.devices.config import DevicesFileError, load_devices
from tfkit.bench.devices.fingerprint import cpu_frequencies, cpu_info, power_supplies, thermal_zones
from tfkit.bench.devices.kinds import open_device, resolve
from tfkit.bench.devices.local import LocalDevice
from tfkit.errors import InputPathError, UsageError


@pytest.mark.parametrize("text, want", [
    ("local", DeviceAddress("local")),
    ("ssh:board", DeviceAddress("ssh", host="board")),
    ("ssh:pi@raspberrypi.local", DeviceAddress("ssh", host="raspberrypi.local", user="pi")),
    ("ssh:pi@10.0.0.7:2222", DeviceAddress("ssh", host="10.0.0.7", user="pi", port=2222)),
    ("ssh:[::1]:2222", DeviceAddress("ssh", host="::1", port=2222)),
    ("ssh:root@[fe80::1]", DeviceAddress("ssh", host="fe80::1", user="root")),
    ("adb", DeviceAddress("adb")),
    ("adb:R58M123ABC", DeviceAddress("adb", serial="R58M123ABC")),
    ("adb:192.168.1.5:5555", DeviceAddress("adb", serial="192.168.1.5:5555")),
    ("  local ", DeviceAddress("local")),
])
def test_parse_accepts(text, want):
    got = parse_address(text)
    assert got == want
    assert parse_address(str(got)) == got  # the canonical form parses back to the same address


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("local:x", "takes nothing"),
    ("ssh:", "no host"),
    ("ssh:pi@", "no host"),
    ("ssh:host:0", "port"),
    ("ssh:host:65536", "port"),
    ("ssh:host:22x", "port"),
    ("ssh:::1", "brackets"),
    ("ssh:[::1", "brackets"),
    ("ssh:[::1]x", "unexpected"),
    ("ssh:bad host", "not a host name"),
    ("ssh:-rf@host", "not a user name"),
    ("adb:", "adb serial"),
    ("adb:a b", "adb serial"),
    ("tcp:1.2.3.4", "unknown device kind 'tcp'"),
    ("pi5", "No devices.yaml"),
    ("locl", "Did you mean 'local'"),
])
def test_parse_rejects_with_the_accepted_forms(text, why):
    with pytest.raises(UsageError) as e:
        parse_address(text)
    assert why in str(e.value)
    assert "ssh:[USER@]HOST[:PORT]" in str(e.value) and "adb[:SERIAL]" in str(e.value)


def write(tmp_path, text, name="devices.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    devices:
      pi5:
        address: ssh:pi@raspberrypi.local:2222
        runtime: tflite_runtime
        python: /home/pi/venv/bin/python
        threads: 4
        cpu_affinity: [4, 5, 6, 7]
        delegate: xnnpack
      coral:
        address: ssh:mendel@coral
        cpu_affinity: "f0"
      here:
        address: local
        python: {python}
    """


def test_devices_yaml_entries_and_names(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.format(python=sys.executable))
    entries = load_devices(path)
    assert list(entries) == ["pi5", "coral", "here"]
    pi5 = entries["pi5"]
    assert pi5.address == DeviceAddress("ssh", host="raspberrypi.local", user="pi", port=2222)
    assert (pi5.runtime.value, pi5.threads, pi5.cpu_affinity, pi5.delegate) == ("tflite_runtime", 4, (4, 5, 6, 7),
                                                                                  "xnnpack")
    assert pi5.source == f"{path}:2" and entries["coral"].cpu_affinity == "f0"
    # A name resolves through the default file in the user config folder.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "cfg" / "tfkit").mkdir(parents=True)
    path.replace(tmp_path / "cfg" / "tfkit" / "devices.yaml")
    resolved = resolve("pi5")
    assert resolved.address.name == "pi5" and resolved.address.port == 2222 and resolved.entry.threads == 4
    device = open_device("here")
    assert isinstance(device, LocalDevice) and device.python == sys.executable
    board = open_device("pi5")  # opening connects to nothing yet: the first run or fingerprint does
    assert type(board).__name__ == "SshDevice" and board.transport.label == "pi5 (ssh:pi@raspberrypi.local:2222)"
    with pytest.raises(UsageError, match="Did you mean 'pi5'.*No devices.yaml entry has that name"):
        resolve("pi6")


@pytest.mark.parametrize("text, line, needle", [
    ("devices:\n  pi:\n    address: ssh:h\n    delegat: gpu\n", 4, "Did you mean 'delegate'"),
    ("devices:\n  pi:\n    address: ssh:h\n    runtime: tflite\n", 4, "Allowed: auto, litert, tflite_runtime"),
    ("devices:\n  pi:\n    address: ssh:h\n    delegate: npu\n", 4, "none"),
    ("devices:\n  pi:\n    address: ssh:h:70000\n", 3, "port"),
    ("devices:\n  pi:\n    address: pi\n", 3, "names cannot point to names"),
    ("devices:\n  pi:\n    threads: 2\n", 2, "missing `address`"),
    ("devices:\n  pi:\n    address: local\n    threads: 0\n", 4, "integer >= 1"),
    ("devices:\n  pi:\n    address: local\n    cpu_affinity: [1, 1]\n", 4, "distinct core ids"),
    ("devices:\n  pi:\n    address: local\n    cpu_affinity: zz\n", 4, "taskset mask"),
    ("devices:\n  ssh:\n    address: local\n", 2, "is a device kind"),
    ("devices:\n  pi:\n    address: local\n  pi:\n    address: local\n", 4, "duplicate key"),
    ("boards:\n  pi:\n    address: local\n", 1, "Allowed: devices"),
    ("devices:\n  pi: {address: ssh:h\n", 3, "invalid YAML"),
])
def test_devices_yaml_errors_name_file_and_line(tmp_path, text, line, needle):
    path = write(tmp_path, text)
    with pytest.raises(DevicesFileError) as e:
        load_devices(path)
    assert str(e.value).startswith(f"{path}:{line}: ") and needle in str(e.value)


def test_missing_files(tmp_path, monkeypatch):
    with pytest.raises(InputPathError, match="no such file"):
        load_devices(tmp_path / "nope.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # the default file may be absent: no names
    assert load_devices() == {}
    # A broken devices file never stops a bare address.
    (tmp_path / "tfkit").mkdir()
    (tmp_path / "tfkit" / "devices.yaml").write_text("devices: [\n")
    assert open_device("local").name == "local"
    with pytest.raises(DevicesFileError):
        resolve("pi5")


def test_device_kind_plugins(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "toy_device", """
        from tfkit.bench.devices import Device

        class ToyDevice(Device):
            name = "toy"

            @classmethod
            def from_address(cls, address, entry=None):
                dev = cls()
                dev.target = address.target
                return dev

            def run(self, model_path, **kw):
                raise NotImplementedError
        """, "tfkit.devices",
                   {"toy": "toy_device:ToyDevice", "broken": "toy_device:Missing", "ssh": "toy_device:ToyDevice"},
                   kinds.DEVICES)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert "toy" in kinds.device_kinds()
        assert any("broken" in str(w.message) for w in caught)  # a broken plug-in warns, never breaks
        assert kinds.DEVICES.get("ssh").__name__ == "SshDevice"  # nor can a plug-in take a built-in kind's name
        device = open_device("toy:bench-rig-3")
        assert type(device).__name__ == "ToyDevice" and device.target == "bench-rig-3"
        path = write(tmp_path, "devices:\n  rig:\n    address: toy:rig-1\n")
        assert load_devices(path, plugin_kinds=kinds.plugin_kinds())["rig"].address.target == "rig-1"
        from click.testing import CliRunner

        from tfkit.cli.main import cli

        assert "  toy " in CliRunner().invoke(cli, ["list", "devices"]).output
    finally:
        kinds.DEVICES._items.pop("toy", None)


def test_fingerprint_readers_on_a_fake_tree(tmp_path):
    def put(rel, text):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    put("proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\nHardware\t: BCM2835\n")
    put("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")
    for cpu, khz, gov in ((0, 1800000, "ondemand"), (1, 2400000, "performance")):
        put(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq", f"{khz}\n")
        put(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", f"{gov}\n")
    put("sys/devices/system/cpu/cpufreq/policy0/x", "")  # not a core
    put("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    put("sys/class/thermal/thermal_zone0/temp", "48312\n")
    put("sys/class/thermal/thermal_zone10/type", "gpu\n")
    put("sys/class/power_supply/battery/type", "Battery\n")
    put("sys/class/power_supply/battery/capacity", "81\n")
    put("sys/class/power_supply/battery/status", "Discharging\n")
    put("sys/class/power_supply/ac/type", "Mains\n")
    put("sys/class/power_supply/ac/online", "0\n")

    info = cpu_info(tmp_path)
    assert info["board"] == "Raspberry Pi 4 Model B Rev 1.4" and info["soc"] == "BCM2835"
    assert info["cpu_model"] is None  # arm64's "processor : 0" is an index, never reported as a model
    assert cpu_frequencies(tmp_path) == [{"cpu": 0, "max_mhz": 1800, "governor": "ondemand"},
                                         {"cpu": 1, "max_mhz": 2400, "governor": "performance"}]
    assert thermal_zones(tmp_path) == [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 48.3},
                                       {"zone": "thermal_zone10", "type": "gpu", "temp_c": None}]
    battery, ac = sorted(power_supplies(tmp_path), key=lambda s: s["type"] != "Battery")
    assert battery == {"name": "battery", "type": "Battery", "capacity_percent": 81, "status": "Discharging",
                       "charging": False}
    assert ac["online"] is False
    empty = tmp_path / "empty"
    assert cpu_frequencies(empty) == [] and thermal_zones(empty) == [] and power_supplies(empty) == []


def test_host_fingerprint_runtimes_come_from_the_runner_python():
    from importlib.util import find_spec

    fp = LocalDevice().fingerprint()
    assert fp["cores"] == os.cpu_count() and fp["runtimes"]["python"]
    assert (fp["runtimes"]["ai_edge_litert"] is not None) == (find_spec("ai_edge_litert") is not None)
    assert fp["runtimes"]["numpy"] is not None
