"""board_sysinfo.py, the one /proc + /sys reader of host and boards: fingerprint, hygiene
snapshots and energy counters, on real-format fake trees (tests/data/sysfs: an x86 laptop with
RAPL, a Raspberry Pi 4 with an INA219 power monitor, an AMD server with amd_energy) and on this
host, where whatever is absent must be named as absent."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfkit.bench.board import board_sysinfo as si
from tfkit.bench.devices.fingerprint import host_fingerprint, sysinfo_script

TREES = Path(__file__).resolve().parents[1] / "data" / "sysfs"
LAPTOP, PI, AMD = TREES / "x86_laptop", TREES / "pi4_ina219", TREES / "amd_energy"


def test_fingerprint_of_a_laptop_and_a_pi():
    laptop = si.fingerprint(str(LAPTOP))
    assert laptop["cpu_model"].startswith("11th Gen Intel") and laptop["board"] == "XPS 13 9310"
    assert laptop["max_mhz"] == [4700] and laptop["governors"] == ["powersave"]
    assert [z["temp_c"] for z in laptop["thermal"]] == [25.0, 51.0]
    assert laptop["battery"] == {"percent": 64, "charging": True}
    pi = si.fingerprint(str(PI))
    assert pi["board"] == "Raspberry Pi 4 Model B Rev 1.4" and pi["soc"] == "BCM2835" and pi["cpu_model"] is None
    assert pi["cpus"] == [{"cpu": 0, "max_mhz": 1800, "governor": "ondemand"}] and pi["battery"] is None
    assert pi["runtimes"]["python"] == sys.executable and pi["runtimes"]["numpy"]


def test_snapshot_reads_what_is_there_and_names_what_is_not():
    laptop = si.snapshot(str(LAPTOP))
    assert laptop["governor"] == {"cpu0": "powersave", "cpu1": "powersave"}
    assert laptop["freq_khz"] == {"cpu0": 1190432, "cpu1": 3999987}
    assert laptop["max_freq_khz"] == {"cpu0": 4700000, "cpu1": 4700000}
    assert laptop["thermal_c"] == {"thermal_zone0 (acpitz)": 25.0, "thermal_zone1 (x86_pkg_temp)": 51.0}
    assert laptop["battery"] == {"percent": 64, "charging": True} and laptop["unavailable"] == []
    pi = si.snapshot(str(PI))
    # scaling_max_freq (the cap a thermal limit lowers), not cpuinfo_max_freq (the chip's top)
    assert pi["max_freq_khz"] == {"cpu0": 1500000} and pi["freq_khz"] == {"cpu0": 600000}
    assert pi["unavailable"] == ["cpufreq: absent for cpu1",
                                 f"battery: no Battery under {PI}/sys/class/power_supply (mains powered, or not exposed)"]
    empty = si.snapshot(str(TREES / "absent"))
    assert empty["governor"] == {} and empty["battery"] is None and len(empty["unavailable"]) == 3
    assert any(u.startswith("thermal: no thermal_zone*") for u in empty["unavailable"])


def test_rapl_package_counter_with_wrap():
    source, why = si.find_energy_source(str(LAPTOP))
    assert why is None and source.kind == "counter_uj"
    # the package only: its sub-zone intel-rapl:0:0 (core) is part of it and must not be added twice
    assert source.paths == [f"{LAPTOP}/sys/class/powercap/intel-rapl:0/energy_uj"]
    assert source.source.startswith("rapl:package-0 ") and source.wrap_uj == [262143328850]
    _, values = source.read()
    assert values == [48211570332]
    assert source.energy_uj((0.0, [1000]), (1.0, [251000])) == 250000
    # the counter restarted at 0 after max_energy_range_uj: 328850 to the top, 5000 after it
    assert source.energy_uj((0.0, [262143000000]), (1.0, [5000])) == 328850 + 5000
    no_range = si.EnergySource("rapl:x", ["/nope"], "counter_uj", [None])
    with pytest.raises(ValueError, match="wrap range is unknown"):
        no_range.energy_uj((0.0, [10]), (1.0, [5]))


def test_rapl_counter_moves_between_real_reads(tmp_path):
    tree = tmp_path / "laptop"
    shutil.copytree(LAPTOP, tree)
    source, _ = si.find_energy_source(str(tree))
    before = source.read()
    (tree / "sys/class/powercap/intel-rapl:0/energy_uj").write_text("48212570332\n")
    after = source.read()
    assert source.energy_uj(before, after) == 1_000_000 and after[0] >= before[0]
    (tree / "sys/class/powercap/intel-rapl:0/energy_uj").chmod(0o400)  # as Linux >= 5.10 ships it
    if os.geteuid() != 0:  # root reads it anyway
        (tree / "sys/class/powercap/intel-rapl:0/energy_uj").chmod(0)
        source, why = si.find_energy_source(str(tree))
        assert source is None and "readable by root only" in why


def test_hwmon_power_sensor_and_energy_counter():
    source, why = si.find_energy_source(str(PI))
    assert why is None and source.kind == "power_uw" and source.paths == [f"{PI}/sys/class/hwmon/hwmon1/power1_input"]
    assert source.source.startswith("hwmon:ina219 (µW sensor, sampled before and after)")
    # 3.0 W then 3.2 W over 0.5 s: the trapezoid of the two real samples, 1.55 J
    assert source.energy_uj((10.0, [3_000_000]), (10.5, [3_200_000])) == pytest.approx(1_550_000)
    amd, why = si.find_energy_source(str(AMD))
    assert why is None and amd.kind == "counter_uj" and amd.source.startswith("hwmon:amd_energy/Esocket0 (µJ counter)")
    assert amd.read()[1] == [70431886245]  # the socket counter, not core 0's


def test_no_energy_source_says_why():
    source, why = si.find_energy_source(str(TREES / "absent"))
    assert source is None
    assert why == (f"no RAPL zones under {TREES}/absent/sys/class/powercap; "
                   f"no hwmon chips under {TREES}/absent/sys/class/hwmon")


def test_this_host_energy_is_real_or_null_with_its_reason():
    source, why = si.find_energy_source("/")
    if source is None:  # this container: neither powercap nor hwmon
        assert "/sys/class/powercap" in why and "/sys/class/hwmon" in why
    else:
        before = source.read()
        after = source.read()
        assert source.energy_uj(before, after) >= 0


def test_script_prints_one_json_line_per_mode():
    def run(*args):
        proc = subprocess.run([sys.executable, str(sysinfo_script()), *args], capture_output=True, text=True,
                              check=True)
        lines = proc.stdout.strip().splitlines()
        assert len(lines) == 1
        return json.loads(lines[0])

    assert run("--root", str(LAPTOP))["board"] == "XPS 13 9310"
    assert run("--root", str(PI), "--snapshot")["thermal_c"] == {"thermal_zone0 (cpu-thermal)": 48.3}
    assert run("--python-runtimes")["python"] == sys.executable
    fp = host_fingerprint(root=PI)  # the host wrapper runs the same script
    assert fp["board"] == "Raspberry Pi 4 Model B Rev 1.4" and fp["runtimes"]["python"] == sys.executable
