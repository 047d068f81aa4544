"""Phone energy sources (tfkit/bench/devices/phone_energy.py) on the power-stats HAL dump format and on
battery samples: exact arithmetic, units and signs normalised, and null with the reason otherwise."""
from __future__ import annotations

from pathlib import Path

import pytest

from tfkit.bench.devices.phone_energy import BatterySource, OdpmSource, choose, parse_energy_meter

DUMPS = sorted((Path(__file__).resolve().parents[1] / "data" / "phone" / "power_stats").glob("constructed_*.txt"))


def test_the_energy_meter_section_is_read_and_nothing_else():
    rails = parse_energy_meter(DUMPS[0].read_text())
    assert len(rails) == 8 and rails["[S4M_VDD_CPUCL0]:CPU"] == 46356.94  # 46356942 µWs printed as mWs
    assert "Channel" not in rails and parse_energy_meter("Can't find service: x\n") == {}


def test_odpm_energy_is_active_power_times_the_inference_time():
    meters = [sum(parse_energy_meter(d.read_text()).values()) for d in DUMPS]
    begin = f"uptime=100.00 50.00\n{DUMPS[0].read_text()}uptime=101.00 50.50\n{DUMPS[1].read_text()}"
    end = f"uptime=103.00 51.00\n{DUMPS[2].read_text()}"
    energy, source = OdpmSource().energy(begin, end, latency_ms=10.0)
    idle_mw, run_mw = (meters[1] - meters[0]) / 1.0, (meters[2] - meters[1]) / 2.0
    assert energy == pytest.approx((run_mw - idle_mw) * 10.0 / 1000)
    assert source.startswith("odpm: 8 power rails") and "idle" in source
    assert OdpmSource().energy(begin, "", latency_ms=10.0)[0] is None  # a reading missing: no number


@pytest.mark.parametrize("idle, load, unit", [
    ("s -200000 4000000", "s -700000 4000000", "µA, µV, discharging negative"),
    ("s 200000 4000000", "s 700000 4000000", "µA, µV, discharging positive"),
    ("s 200 4000", "s 700 4000", "mA, mV"),
])
def test_battery_power_is_normalised(idle, load, unit):
    state = "battery_status=Discharging\nonline_usb=0\n"
    energy, source = BatterySource().energy(f"{state}{idle}\n{idle}\n--\n", f"{load}\n{load}\n{state}", latency_ms=4.0)
    assert energy == pytest.approx((2800 - 800) * 4.0 / 1000), unit  # 0.7 A x 4 V - 0.2 A x 4 V = 2 W, x 4 ms
    assert source.startswith("battery:")


def test_battery_is_refused_while_charging_or_when_the_sign_flips():
    plugged = "battery_status=Charging\nonline_usb=1\n"
    energy, why = BatterySource().energy(f"{plugged}s -2 4000\n--\n", f"s -7 4000\n{plugged}", latency_ms=4.0)
    assert energy is None and "plugged in (usb online)" in why
    state = "battery_status=Discharging\n"
    energy, why = BatterySource().energy(f"{state}s -200000 4000000\n--\n", f"s 700000 4000000\n{state}",
                                         latency_ms=4.0)
    assert energy is None and "changed sign" in why


def test_choose_prefers_rails_then_battery_else_says_why():
    assert choose("odpm=yes\nbattery_status=Charging\nonline_usb=1\n")[0].name == "odpm"
    unplugged = "odpm=no\nbattery_current_now=-1\nbattery_voltage_now=4000000\nbattery_status=Discharging\n"
    assert choose(unplugged)[0].name == "battery"
    source, why = choose("odpm=no\nbattery_status=Full\nonline_usb=1\n")
    assert source is None and why.startswith("unavailable: odpm: no power rails") and "plugged in" in why
    assert "batterystats" not in why
