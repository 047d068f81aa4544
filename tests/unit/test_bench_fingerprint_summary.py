"""`tfkit devices`' one-line summary and the report's fingerprint headline read any fingerprint
shape (this host's real one, a board's, a phone's, a failed one, a plug-in's odd one) without raising."""
from __future__ import annotations

import os

import pytest

from tfkit.bench.devices.local import LocalDevice
from tfkit.cli.devices import summary
from tfkit.report.table import SUMMARY_KEYS, fingerprint_summary

PI = {"board": "Raspberry Pi 4 Model B Rev 1.4", "soc": "BCM2835", "cpu_model": None, "cores": 4, "abi": "aarch64",
      "os": "Linux", "kernel": "6.1.21-v8+", "android_api": None, "max_mhz": [1800], "governors": ["ondemand"],
      "thermal": [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 48.3}], "power": [], "battery": None,
      "runtimes": {"python_version": "3.11.2", "tflite_runtime": "2.14.0", "numpy": "1.26.4", "ai_edge_litert": None}}
PHONE = {"soc": "SM8550", "cores": 8, "abi": "arm64-v8a", "android_api": 34, "kernel": "5.15.94",
         "battery": {"percent": 81, "charging": False}, "thermal": [None, {"zone": "tz3", "temp_c": 39.0}]}


def test_this_hosts_real_fingerprint():
    fp = LocalDevice().fingerprint()
    line = summary(fp)
    assert f"{os.cpu_count()} cores" in line and os.uname().release in line and "python " in line
    head = fingerprint_summary(fp)
    assert tuple(head) == SUMMARY_KEYS and head["cores"] == str(os.cpu_count())


@pytest.mark.parametrize("fp, words", [
    (PI, ["Raspberry Pi 4 Model B Rev 1.4", "4 cores, Linux 6.1.21-v8+, aarch64", "max 1800 MHz",
          "governor ondemand", "cpu-thermal 48.3°C", "tflite-runtime 2.14.0, numpy 1.26.4"]),
    (PHONE, ["SM8550; 8 cores, Android API 34, arm64-v8a", "tz3 39.0°C", "battery 81% not charging"]),
    ({"error": "ssh: connect to host pi port 22: Connection refused"}, ["fingerprint failed: ssh: connect"]),
    (None, ["not recorded"]),
    ({"cores": [], "thermal": "hot", "power": {"x": 1}, "runtimes": "none", "max_mhz": 5, "governors": "perf"},
     ["unknown CPU", "n/a cores", "governor not exposed", "thermal not exposed", "no interpreter runtime"]),
])
def test_any_shape_reads_as_one_line(fp, words):
    line = summary(fp)
    assert "\n" not in line
    for word in words:
        assert word in line, line
