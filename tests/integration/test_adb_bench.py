"""`tfkit bench --device adb:SERIAL` end to end: the REAL adb client and server, the stand-in phone
(tests/phone), its benchmark_model replaying LiteRT's recorded outputs, and tfkit's own AdbDevice,
CLI and parsers. Expected values are read from the recordings (tests/data), never written twice."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.phone.fixture import adb_lab, phone  # noqa: F401  (the fixtures)
from tests.phone.rootfs import DATA
from tfkit.bench.benchmark_model import parse_benchmark_model
from tfkit.bench.devices.base import BenchConfig
from tfkit.bench.devices.kinds import open_device
from tfkit.cli.main import cli
from tfkit.errors import BenchmarkError

STANDIN_BINARY = Path(__file__).resolve().parents[1] / "phone" / "benchmark_model"
RECORDINGS = DATA.parent / "benchmark_model"
SYSFS = json.loads((DATA / "sysfs.json").read_text())["files"]


@pytest.fixture
def model(tmp_path) -> Path:
    """A real tiny .tflite (the stand-in benchmark_model replays a recording; tfkit reads the file itself)."""
    from tests.unit.bench_tiny_models import write_clip_classifier

    return write_clip_classifier(tmp_path / "tiny_int8.tflite")


def recording(phone, name: str, rc: int = 0) -> None:  # noqa: F811
    """Which recorded output the stand-in benchmark_model replays next (see tests/phone/benchmark_model)."""
    phone.path("/data/local/tmp/benchmark_model.recording").write_text(f"{name} {rc}\n")


def clear_recording(phone) -> None:  # noqa: F811
    phone.path("/data/local/tmp/benchmark_model.recording").unlink(missing_ok=True)


def expected(name: str, **kw):
    return parse_benchmark_model((RECORDINGS / f"{name}.txt").read_text(), "", 0, name="m", precision="int8",
                                 device="adb", **kw)


def test_a_model_runs_pinned_to_the_big_cores(phone, model):  # noqa: F811
    clear_recording(phone)
    device = open_device(f"adb:{phone.serial}")
    result = device.run(model, config=BenchConfig(threads=2, runs=10, benchmark_binary=str(STANDIN_BINARY)),
                        name="tiny", precision="int8")
    want = expected("readme_op_profiling")  # --enable_op_profiling=true is always passed
    assert result.latency_ms.mean == want.latency_ms.mean and result.init_ms == want.init_ms
    assert result.extra["op_profile"] == want.extra["op_profile"] and result.extra["op_profile"]
    # the fastest cluster of the recorded sysfs: cpu6-7 at 2802000 kHz -> mask c0
    top = max(v for k, v in SYSFS.items() if k.endswith("cpuinfo_max_freq"))
    big = sorted(int(k.split("/cpu/cpu")[1].split("/")[0]) for k, v in SYSFS.items()
                 if k.endswith("cpuinfo_max_freq") and v == top)
    assert result.extra["cpu_affinity"] == big and result.extra["command"][:2] == ["taskset", "c0"]
    assert "--num_threads=2" in result.extra["command"] and "--num_runs=10" in result.extra["command"]
    before = result.hygiene["before"]
    assert before["governor"]["cpu0"] == SYSFS["/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"]
    assert before["max_freq_khz"]["cpu7"] == SYSFS["/sys/devices/system/cpu/cpu7/cpufreq/scaling_max_freq"]
    assert any(k.endswith("(BIG)") for k in before["thermal_c"]) and result.hygiene["after"]["thermal_c"]
    assert before["battery"] == {"percent": 100, "charging": True}
    # the recorded phone is USB powered and has no power rails: null, with both reasons
    assert result.energy_mj_per_inference is None
    assert "odpm: no power rails" in result.energy_source and "plugged in" in result.energy_source
    listing = phone.adb("shell", "ls /data/local/tmp/tfkit/blobs /data/local/tmp/tfkit/runs").stdout.split()
    assert len([n for n in listing if n.endswith(".tflite")]) == 1 and "runs:" in listing[-1]  # run folder gone


def test_cli_bench_writes_the_part1_schema(phone, model, tmp_path):  # noqa: F811
    clear_recording(phone)
    out = tmp_path / "bench"
    run = CliRunner().invoke(cli, ["bench", str(model), "--device", f"adb:{phone.serial}", "--benchmark-binary",
                                   str(STANDIN_BINARY), "--runs", "3", "--rounds", "1", "--out", str(out), "-q"])
    assert run.exit_code == 0, run.output
    [row] = json.loads((out / "results.json").read_text())
    assert row["device"]["address"] == f"adb:{phone.serial}"
    assert row["device"]["fingerprint"]["os"] == "Android" and row["device"]["fingerprint"]["soc"] == "gs101"
    assert row["runtime"] == "litert benchmark_model" and row["delegate"] == "default"
    assert set(row["hygiene"]) >= {"before", "after"} and row["energy_mj_per_inference"] is None
    assert math.isfinite(row["latency_ms"]["mean"]) and row["extra"]["op_profile"]


def test_delegate_flags_reach_the_phone(phone, model):  # noqa: F811
    clear_recording(phone)
    device = open_device(f"adb:{phone.serial}")
    result = device.run(model, config=BenchConfig(delegate="gpu", runs=5, benchmark_binary=str(STANDIN_BINARY)),
                        name="m", precision="fp16")
    assert result.delegate == "gpu" and "--use_gpu=true" in result.extra["command"]
    with pytest.raises(BenchmarkError, match=r"failed \[delegate\]"):  # NNAPI took no node: never a CPU number
        device.run(model, config=BenchConfig(delegate="nnapi", runs=5, benchmark_binary=str(STANDIN_BINARY)))


def test_no_binary_says_where_to_get_it(phone, model):  # noqa: F811
    device = open_device(f"adb:{phone.serial}")
    with pytest.raises(BenchmarkError, match="android_aarch64_benchmark_model.*--benchmark-binary"):
        device.run(model, config=BenchConfig(runs=5))


# --- faults: one `error:` line, a non-zero exit, the models measured before it kept --------------------

def padded_model(path: Path, extra_bytes: int) -> Path:
    """A valid tiny .tflite with an unused buffer of `extra_bytes` random bytes (a big file to push)."""
    import os

    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    from tests.unit.bench_tiny_models import clip_classifier_bytes
    from tfkit.convert.flatbuffer import read_model, write_model

    tree = read_model(clip_classifier_bytes())
    pad = schema.BufferT()
    pad.data = np.frombuffer(os.urandom(extra_bytes), np.uint8)
    tree.buffers.append(pad)
    path.write_bytes(write_model(tree))
    return path


def bench_cli(serial: str, out: Path, *models: Path, extra=()):
    return CliRunner().invoke(cli, ["bench", *map(str, models), "--device", f"adb:{serial}", "--benchmark-binary",
                                    str(STANDIN_BINARY), "--runs", "3", "--rounds", "1", "--out", str(out), *extra],
                              catch_exceptions=False)


def one_error_line(run) -> str:
    assert run.exit_code != 0 and "Traceback" not in run.output, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    return run.stderr


def kept(serial: str, *models: Path) -> list[str]:
    """The same batch through the API: the failure is a BenchmarkError whose `results` keep the models
    measured before it (the CLI's bench step reports the failure; see docs/devices.md)."""
    from tfkit.bench import benchmark

    with pytest.raises(BenchmarkError) as caught:
        benchmark([(m.stem, "float32", m) for m in models], device=open_device(f"adb:{serial}"), progress=False,
                  config=BenchConfig(runs=3, benchmark_binary=str(STANDIN_BINARY)))
    assert "1 of 2 models failed" in str(caught.value)
    return [r.name for r in caught.value.results]


def test_phone_unplugged_mid_push_keeps_the_first_model(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_clip_classifier

    first = write_clip_classifier(tmp_path / "first.tflite")
    second = padded_model(tmp_path / "second.tflite", 300_000)
    before_second = first.stat().st_size + STANDIN_BINARY.stat().st_size  # what is pushed for the first model
    for attempt in ("cli", "api"):
        flaky = adb_lab.start_phone(f"unplug-push-{attempt}", drop_after_bytes=before_second + 1000)
        try:
            if attempt == "cli":
                message = one_error_line(bench_cli(flaky.serial, tmp_path / "bench", first, second))
                assert "1 of 2 models failed" in message and "second" in message, message
                assert "connection lost during push (retried once" in message, message
            else:
                assert kept(flaky.serial, first, second) == ["first"]
        finally:
            adb_lab.stop_phone(flaky)


def test_phone_unplugged_mid_run_keeps_the_first_model(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_clip_classifier
    from tfkit.bench.devices.remote import sha256_file

    first = write_clip_classifier(tmp_path / "first.tflite")
    second = padded_model(tmp_path / "second.tflite", 2000)
    for attempt in ("cli", "api"):
        doomed = adb_lab.start_phone(f"unplug-run-{attempt}")
        try:
            doomed.path("/data/local/tmp/benchmark_model.unplug").write_text(sha256_file(second) + "\n")
            if attempt == "cli":
                message = one_error_line(bench_cli(doomed.serial, tmp_path / "bench", first, second))
                assert "1 of 2 models failed" in message and "connection lost during run (retried once" in message
            else:
                assert kept(doomed.serial, first, second) == ["first"]
        finally:
            adb_lab.stop_phone(doomed)


def test_unauthorized_phone_is_one_error_line(adb_lab, tmp_path, model):  # noqa: F811
    locked = adb_lab.start_phone("locked-bench", unauthorized=True)
    try:
        message = one_error_line(bench_cli(locked.serial, tmp_path / "bench", model))
        assert "not authorized this computer" in message and "Allow" in message, message
    finally:
        adb_lab.stop_phone(locked)


def test_full_data_local_tmp_keeps_the_first_model(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_clip_classifier

    first = write_clip_classifier(tmp_path / "first.tflite")
    second = padded_model(tmp_path / "second.tflite", 1_500_000)
    small = adb_lab.start_phone("small-bench", disk="1m")
    try:
        message = one_error_line(bench_cli(small.serial, tmp_path / "bench", first, second))
        assert "1 of 2 models failed" in message and "disk is full" in message and "No space left" in message
        assert kept(small.serial, first, second) == ["first"]  # the phone is still there: same batch via the API
        left = small.adb("shell", "ls /data/local/tmp/tfkit/blobs").stdout.split()
        assert not [n for n in left if ".part" in n or ".tmp." in n]  # no broken copy left behind
    finally:
        adb_lab.stop_phone(small)


@pytest.mark.parametrize("recorded, rc", [("wrong_abi_mksh_64bit", 1), ("wrong_abi_bash", 126)])
def test_a_binary_for_the_wrong_abi_is_one_error_line(phone, tmp_path, model, recorded, rc):  # noqa: F811
    """The phone's shell refusing the binary (its real words, recorded) ends the run with the ABI hint."""
    recording(phone, recorded, rc)
    try:
        message = one_error_line(bench_cli(phone.serial, tmp_path / "bench", model))
    finally:
        clear_recording(phone)
    words = (RECORDINGS / f"{recorded}.txt").read_text().strip().splitlines()[-1]
    assert "[wrong_abi]" in message and "android_aarch64" in message and words.split(": ", 1)[-1] in message


def test_missing_binary_is_one_error_line(phone, tmp_path, model):  # noqa: F811
    run = CliRunner().invoke(cli, ["bench", str(model), "--device", f"adb:{phone.serial}", "--runs", "3",
                                   "--rounds", "1", "--out", str(tmp_path / "b")], catch_exceptions=False)
    message = one_error_line(run)
    assert "--benchmark-binary" in message and "android_aarch64_benchmark_model" in message


# --- energy: power rails, else the battery while unplugged, else null with the reason ------------------

def test_energy_from_the_power_rails(adb_lab, model):  # noqa: F811
    """A phone with ODPM rails: the power-stats HAL dump read before (idle baseline) and after the run."""
    rails = adb_lab.start_phone("odpm")
    try:
        dumps = sorted((DATA / "power_stats").glob("constructed_*.txt"))
        served = rails.path("/system/etc/standin/power_stats")
        served.mkdir()
        for i, dump in enumerate([dumps[0], *dumps]):  # the probe, idle start, idle end, after the run
            (served / f"{i:02d}.txt").write_text(dump.read_text())
        rails.path("/data/local/tmp/benchmark_model.sleep").write_text("0.5\n")
        result = open_device(f"adb:{rails.serial}").run(
            model, config=BenchConfig(runs=5, benchmark_binary=str(STANDIN_BINARY)))
        assert result.energy_source.startswith("odpm: 8 power rails")
        assert result.energy_mj_per_inference is not None and result.energy_mj_per_inference > 0
    finally:
        adb_lab.stop_phone(rails)


def test_energy_from_the_battery_only_while_unplugged(adb_lab, model):  # noqa: F811
    """Battery current x voltage (sampled on the phone), idle baseline subtracted; the stand-in's
    benchmark_model draws a higher current while it runs. Plugged in: null, with the reason."""
    cell = adb_lab.start_phone("battery")
    try:
        battery = cell.path("/sys/class/power_supply/battery")
        (battery / "voltage_now").write_text("4000000\n")  # µV
        (battery / "current_now").write_text("-200000\n")  # µA, discharging reads negative on this phone
        device = open_device(f"adb:{cell.serial}")
        config = BenchConfig(runs=5, benchmark_binary=str(STANDIN_BINARY))
        plugged = device.run(model, config=config)
        assert plugged.energy_mj_per_inference is None and "plugged in (usb online)" in plugged.energy_source
        (cell.path("/sys/class/power_supply/usb/online")).write_text("0\n")
        (battery / "status").write_text("Discharging\n")
        cell.path("/data/local/tmp/benchmark_model.load").write_text("-700000 1.5\n")
        result = open_device(f"adb:{cell.serial}").run(model, config=config)
        assert result.energy_source.startswith("battery: /sys/class/power_supply/battery"), result.energy_source
        # (700 mA - 200 mA) x 4.0 V = 2000 mW more while running; the run window also holds the tool's
        # start and end at idle current, so the mean is lower: between a third and all of it
        per_ms = result.energy_mj_per_inference / result.latency_ms.mean
        assert 2000 / 3 / 1000 < per_ms <= 2000 / 1000 + 1e-9, (per_ms, result.energy_source)
    finally:
        adb_lab.stop_phone(cell)


# --- streaming models: the demo app's benchmark mode ---------------------------------------------------

def install_standin_app(phone, tmp_path) -> Path:  # noqa: F811
    """An 'APK' the stand-in's pm accepts (it reads the package from standin-package.txt): installed
    with the real `adb install`, as tfkit flash --apk does."""
    import zipfile

    apk = tmp_path / "app-debug.apk"
    with zipfile.ZipFile(apk, "w") as z:
        z.writestr("standin-package.txt", "tfkit.demo")
    from tfkit.bench.devices.adb import AdbTransport

    AdbTransport(phone.serial).install(apk)
    return apk


def test_a_streaming_model_without_the_app_says_how_to_install_it(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_stream_classifier

    bare = adb_lab.start_phone("no-app")
    try:
        stream = write_stream_classifier(tmp_path / "stream.tflite")
        run = bench_cli(bare.serial, tmp_path / "bench", stream, extra=["--stream"])
        message = one_error_line(run)
        assert "tfkit.demo is not installed" in message and "--apk" in message and "tfkit flash" in message
    finally:
        adb_lab.stop_phone(bare)


def test_a_streaming_model_goes_through_the_app(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_stream_classifier

    app = adb_lab.start_phone("with-app")
    try:
        install_standin_app(app, tmp_path)
        stream = write_stream_classifier(tmp_path / "stream.tflite")
        out = tmp_path / "bench"
        run = bench_cli(app.serial, out, stream, extra=["--stream", "--threads", "4"])
        assert run.exit_code == 0, run.output
        [row] = json.loads((out / "results.json").read_text())
        recorded = json.loads((DATA / "app_benchmark.json").read_text())
        assert row["latency_ms"]["mean"] == recorded["latency_ms"]["mean"]
        assert row["stream"]["frames"] == recorded["stream"]["frames"] and row["delegate"] == recorded["delegate"]
        assert row["extra"]["benchmarked_by"] == "tfkit.demo benchmark mode"
        assert row["device"]["address"] == f"adb:{app.serial}" and row["hygiene"]["before"]["governor"]
        # the model went to the app's own files folder (the app cannot read /data/local/tmp)
        placed = app.adb("shell", "ls /sdcard/Android/data/tfkit.demo/files/tfkit/bench").stdout.split()
        assert placed == ["stream.tflite"]
    finally:
        adb_lab.stop_phone(app)


# --- the number: overhead outside the timed run, model cached on the phone ------------------------------

def test_cached_model_is_not_sent_again_and_overhead_is_small(phone, model):  # noqa: F811
    clear_recording(phone)
    device = open_device(f"adb:{phone.serial}")
    config = BenchConfig(runs=5, benchmark_binary=str(STANDIN_BINARY))
    device.run(model, config=config)
    stamp = phone.path("/data/local/tmp/tfkit/blobs").stat().st_mtime_ns
    start = time.perf_counter()
    again = open_device(f"adb:{phone.serial}").run(model, config=config)  # a fresh device: one set-up round trip
    elapsed = time.perf_counter() - start
    assert phone.path("/data/local/tmp/tfkit/blobs").stat().st_mtime_ns == stamp  # nothing written there
    print(f"cached model on the stand-in phone: {elapsed:.2f} s for fingerprint + set-up + run")
    assert elapsed < 3.0 and again.latency_ms.mean > 0


def test_a_named_phone_takes_its_binary_and_cores_from_devices_yaml(phone, model, tmp_path):  # noqa: F811
    clear_recording(phone)
    (tmp_path / "cfg" / "tfkit").mkdir(parents=True)
    (tmp_path / "cfg" / "tfkit" / "devices.yaml").write_text(
        f"devices:\n  pixel:\n    address: adb:{phone.serial}\n    benchmark_binary: {STANDIN_BINARY}\n"
        "    big_cores: [4, 5]\n    threads: 2\n")
    out = tmp_path / "bench"
    run = CliRunner().invoke(cli, ["bench", str(model), "--device", "pixel", "--runs", "3", "--rounds", "1",
                                   "--out", str(out)], env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")},
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    [row] = json.loads((out / "results.json").read_text())
    assert row["device"]["name"] == "pixel" and row["extra"]["command"][:2] == ["taskset", "30"]
    assert row["extra"]["benchmark_binary"] == str(STANDIN_BINARY)
