"""AdbTransport through the REAL adb client and server against the stand-in phone (tests/phone/adbd.py):
connect and list, the Android fingerprint, push/pull byte for byte, exit codes and argv quoting, and
the faults: an unauthorized phone, the phone gone mid-push, a full /data/local/tmp, no such phone.
What the phone answers comes from tests/data/phone (recorded from real devices), so the expected
values here are read from there, not written twice."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.phone.fixture import adb_lab, phone  # noqa: F401  (the fixtures)
from tests.phone.rootfs import DATA, load_props
from tfkit.bench.devices.adb import (
    AdbTransport,
    android_fingerprint,
    find_adb,
    list_adb_devices,
    parse_adb_devices,
)
from tfkit.bench.devices.transport import (
    AuthFailed,
    ConnectionLost,
    DeviceDiskFull,
    TransportError,
    Unreachable,
)
from tfkit.errors import ToolNotFoundError

PROPS = load_props(DATA / "getprop.txt")
SYSFS = json.loads((DATA / "sysfs.json").read_text())["files"]


def transport(phone) -> AdbTransport:  # noqa: F811
    return AdbTransport(phone.serial, server_port=phone.server_port)


def test_the_phone_is_listed_with_its_model(phone):  # noqa: F811
    listed = {d.serial: d for d in list_adb_devices(server_port=phone.server_port)}
    row = listed[phone.serial]
    assert (row.state, row.hint, row.address) == ("device", None, f"adb:{phone.serial}")
    assert row.details["model"] == PROPS["ro.product.model"].replace(" ", "_")  # adb's own spelling
    assert row.details["device"] == PROPS["ro.product.device"]


def test_android_fingerprint(phone):  # noqa: F811
    start = time.perf_counter()
    fp = android_fingerprint(transport(phone))
    print(f"fingerprint: {1000 * (time.perf_counter() - start):.0f} ms (one adb shell, features asked once)")
    assert (fp["os"], fp["model"], fp["soc"], fp["abi"], fp["android_api"]) == (
        "Android", PROPS["ro.product.model"], PROPS["ro.board.platform"], PROPS["ro.product.cpu.abi"],
        int(PROPS["ro.build.version.sdk"]))
    max_khz = {int(k.split("/cpu/cpu")[1].split("/")[0]): v for k, v in SYSFS.items() if k.endswith("cpuinfo_max_freq")}
    assert fp["cores"] == len(max_khz)
    clusters = {}
    for cpu, khz in sorted(max_khz.items()):
        clusters.setdefault(round(khz / 1000), []).append(cpu)
    assert fp["clusters"] == [{"cpus": cpus, "max_mhz": mhz} for mhz, cpus in sorted(clusters.items())]
    assert fp["clusters"][0]["max_mhz"] < fp["clusters"][-1]["max_mhz"]  # little first, big last
    governors = {v for k, v in SYSFS.items() if k.endswith("scaling_governor")}
    assert fp["governors"] == sorted(governors)
    zones = {SYSFS[f"{k[:-5]}/type"]: v / 1000 for k, v in SYSFS.items() if k.endswith("/temp")}
    assert {z["type"]: z["temp_c"] for z in fp["thermal"]} == zones
    battery = (DATA / "dumpsys_battery.txt").read_text()
    level = int(battery.split("level:")[1].split()[0])
    assert fp["battery"]["percent"] == level and fp["battery_source"] == "dumpsys battery"
    assert fp["battery"]["charging"] is (int(battery.split("status:")[1].split()[0]) in (2, 5))


def test_fingerprint_falls_back_to_sysfs_for_the_battery(adb_lab):  # noqa: F811
    other = adb_lab.start_phone("nodumpsys")
    try:
        (other.path("/system/etc/standin/dumpsys_battery.txt")).write_text("")  # a dumpsys that says nothing
        (other.path("/sys/class/power_supply/battery/capacity")).write_text("57\n")
        (other.path("/sys/class/power_supply/battery/status")).write_text("Discharging\n")
        fp = android_fingerprint(transport(other))
        assert fp["battery"] == {"percent": 57, "charging": False}
        assert fp["battery_source"] == "/sys/class/power_supply"
    finally:
        adb_lab.stop_phone(other)


def test_push_and_pull_are_byte_for_byte(phone, tmp_path):  # noqa: F811
    data = os.urandom(3 * 1024 * 1024)
    local, back = tmp_path / "model.tflite", tmp_path / "back.tflite"
    local.write_bytes(data)
    t = transport(phone)
    start = time.perf_counter()
    t.push(local, "/data/local/tmp/model.tflite")
    pushed = time.perf_counter()
    t.pull("/data/local/tmp/model.tflite", back)
    pulled = time.perf_counter()
    assert back.read_bytes() == data
    assert phone.path("/data/local/tmp/model.tflite").read_bytes() == data
    assert [p.name for p in phone.path("/data/local/tmp").iterdir() if ".tmp." in p.name] == []
    assert not list(tmp_path.glob("*.tmp.*"))
    assert "model.tflite" in phone.adb("ls", "/data/local/tmp").stdout  # the sync LIST request
    digest = t.exec(["sha256sum", "/data/local/tmp/model.tflite"], timeout=30).stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    print(f"3 MiB push {1000 * (pushed - start):.0f} ms, pull {1000 * (pulled - pushed):.0f} ms")


def test_exec_keeps_exit_codes_stderr_and_words(phone, tmp_path):  # noqa: F811
    t = transport(phone)
    done = t.exec(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=30)
    assert (done.rc, done.stdout, done.stderr) == (7, "out\n", "err\n")
    words = ["a b", "it's", "$HOME", ";rm -rf /", "*", "tab\there"]
    assert t.exec(["printf", "%s|", *words], timeout=30).stdout == "|".join(words) + "|"
    assert t.exec(["false"], timeout=30).rc == 1  # the command's own 1 is not mistaken for adb's
    assert t.shell('printf "%s/%s" "$1" "$2"', "a b", "$c", timeout=30).stdout == "a b/$c"
    assert t.exec(["sh", "-c", "kill -9 $$"], timeout=30).rc == 128 + 9
    stdin = tmp_path / "in.bin"
    stdin.write_bytes(os.urandom(100_000))
    assert t.exec(["sha256sum"], timeout=30, input_path=stdin).stdout.split()[0] == \
        hashlib.sha256(stdin.read_bytes()).hexdigest()
    start = time.perf_counter()
    for _ in range(5):
        t.exec(["true"], timeout=30)
    print(f"one adb shell round trip: {1000 * (time.perf_counter() - start) / 5:.1f} ms")


def test_a_missing_remote_file_is_a_command_failure(phone, tmp_path):  # noqa: F811
    with pytest.raises(TransportError) as caught:
        transport(phone).pull("/data/local/tmp/absent.tflite", tmp_path / "x")
    assert type(caught.value).__name__ == "CommandFailed" and "absent.tflite" in str(caught.value)
    assert not (tmp_path / "x").exists()


def test_an_unauthorized_phone_says_what_to_do(adb_lab):  # noqa: F811
    locked = adb_lab.start_phone("locked", unauthorized=True)
    try:
        row = {d.serial: d for d in list_adb_devices(server_port=adb_lab.server_port)}[locked.serial]
        assert row.state == "unauthorized" and "Allow" in row.hint
        with pytest.raises(AuthFailed) as caught:
            transport(locked).exec(["true"], timeout=30)
        assert f"adb:{locked.serial}" in str(caught.value) and "Allow" in str(caught.value)
    finally:
        adb_lab.stop_phone(locked)


def test_phone_gone_mid_push(adb_lab, tmp_path):  # noqa: F811
    flaky = adb_lab.start_phone("unplugged", drop_after_bytes=1_000_000)
    try:
        local = tmp_path / "model.tflite"
        local.write_bytes(os.urandom(3 * 1024 * 1024))
        t = transport(flaky)
        with pytest.raises(ConnectionLost) as caught:
            t.push(local, "/data/local/tmp/model.tflite")
        assert caught.value.phase == "push" and flaky.serial in str(caught.value)
        assert not flaky.path("/data/local/tmp/model.tflite").exists()
        flaky.proc.wait(timeout=10)  # the phone is gone for good
        with pytest.raises(Unreachable) as again:
            t.exec(["true"], timeout=30)
        assert "offline" in str(again.value) or "cannot reach" in str(again.value)
    finally:
        adb_lab.stop_phone(flaky)


def test_full_data_local_tmp(adb_lab, tmp_path):  # noqa: F811
    small = adb_lab.start_phone("small", disk="1m")
    try:
        local = tmp_path / "model.tflite"
        local.write_bytes(os.urandom(3 * 1024 * 1024))
        t = transport(small)
        with pytest.raises(DeviceDiskFull) as caught:
            t.push(local, "/data/local/tmp/model.tflite")
        message = str(caught.value)
        assert "No space left on device" in message and "/data/local/tmp" in message and "df -h" in message
        assert t.exec(["ls", "-a", "/data/local/tmp"], timeout=30).stdout.split() == [".", ".."]  # nothing left over
        tiny = tmp_path / "tiny.bin"
        tiny.write_bytes(b"fits")
        t.push(tiny, "/data/local/tmp/tiny.bin")  # the phone still works
        assert t.exec(["cat", "/data/local/tmp/tiny.bin"], timeout=30).stdout == "fits"
    finally:
        adb_lab.stop_phone(small)


def test_no_such_phone(adb_lab):  # noqa: F811
    with pytest.raises(Unreachable) as caught:
        AdbTransport("127.0.0.1:1", server_port=adb_lab.server_port).exec(["true"], timeout=30)
    assert "adb devices" in str(caught.value)


def test_without_adb_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "adbutils", None)  # as if adbutils were not installed: import fails
    with pytest.raises(ToolNotFoundError, match="apt-get install -y adb"):
        find_adb()


def test_benchmark_model_runs_on_the_phone(phone, tmp_path):  # noqa: F811
    """The stand-in benchmark_model, pushed like the real binary, replays LiteRT's recorded output."""
    recordings = DATA.parent / "benchmark_model"
    t = transport(phone)
    t.push(Path(__file__).parents[1] / "phone" / "benchmark_model", "/data/local/tmp/benchmark_model")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" * 8)
    t.push(model, "/data/local/tmp/m.tflite")
    done = t.exec(["taskset", "c0", "/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/m.tflite",
                   "--num_threads=2"], timeout=60)
    expected = (recordings / "constructed_info_xnnpack_percentiles_peak.txt").read_text()
    assert done.rc == 0 and done.stdout == expected and "Inference timings in us:" in done.stdout
    profiled = t.exec(["/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/m.tflite",
                       "--enable_op_profiling=true"], timeout=60)
    assert profiled.stdout == (recordings / "readme_op_profiling.txt").read_text()
    missing = t.exec(["/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/absent.tflite"], timeout=60)
    assert missing.rc == 1 and "ERROR: Benchmarking failed." in missing.stderr
    assert t.exec(["taskset", "100", "true"], timeout=30).rc == 1  # CPU 8: the phone has 0-7


def test_a_phone_without_shell_v2_still_gives_exit_codes(adb_lab, tmp_path):  # noqa: F811
    """Before Android 7 adbd has no shell protocol: `adb shell` exits 0 whatever the command did, so the
    transport goes through exec-out and carries the exit code itself (stderr folds into stdout there)."""
    old = adb_lab.start_phone("android6", shell_v2=False)
    try:
        plain = old.adb("shell", "exit 3")
        assert plain.returncode == 0  # what adb itself reports on such a phone
        t = transport(old)
        assert "shell_v2" not in t.features()
        done = t.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
        assert done.rc == 3 and sorted(done.stdout.split()) == ["err", "out"] and done.stderr == ""
        assert t.exec(["printf", "no newline"], timeout=30).stdout == "no newline"
        data = tmp_path / "in.bin"
        data.write_bytes(os.urandom(200_000) + b"\r\n\n")
        assert t.exec(["sha256sum"], timeout=30, input_path=data).stdout.split()[0] == \
            hashlib.sha256(data.read_bytes()).hexdigest()
        back = tmp_path / "back.bin"
        with open(back, "wb") as sink:
            rc, _, _ = t._exec_to(["cat", "/data/local/tmp/.tfkit-probe"], sink, timeout=30)
        assert rc != 0
        t.push(data, "/data/local/tmp/data.bin")
        with open(back, "wb") as sink:
            assert t._exec_to(["cat", "/data/local/tmp/data.bin"], sink, timeout=30)[0] == 0
        assert back.read_bytes() == data.read_bytes()
        assert t.exec(["ls", "-a", "/data/local/tmp"], timeout=30).stdout.split() == [".", "..", "data.bin"]
    finally:
        adb_lab.stop_phone(old)


def test_phone_gone_mid_run(adb_lab):  # noqa: F811
    """adb itself says nothing when the phone vanishes mid-command (adb 29 exits 0, adb 36 255): the
    transport notices the missing exit code and says the link dropped."""
    doomed = adb_lab.start_phone("unplugged-mid-run")
    try:
        killer = threading.Timer(1.0, doomed.proc.kill)
        killer.start()
        with pytest.raises(ConnectionLost) as caught:
            transport(doomed).exec(["sh", "-c", "echo started; sleep 10; echo done"], timeout=60)
        killer.join()
        assert caught.value.phase == "run" and "went away" in str(caught.value)
        row = {d.serial: d for d in list_adb_devices(server_port=adb_lab.server_port)}.get(doomed.serial)
        assert row is not None and row.state == "offline" and "replug" in row.hint
    finally:
        adb_lab.stop_phone(doomed)


def test_adb_devices_rows_say_what_to_do():
    """Recorded `adb devices -l` (tests/data/phone/adb_devices_l.txt): usable phones have no hint,
    the others say what to do."""
    rows = {d.serial: d for d in parse_adb_devices((DATA / "adb_devices_l.txt").read_text())}
    assert {s: d.state for s, d in rows.items()} == {
        "127.0.0.1:15601": "device", "127.0.0.1:15602": "unauthorized", "127.0.0.1:15604": "offline",
        "00000000": "no permissions"}
    assert rows["127.0.0.1:15601"].details == {"product": "oriole", "model": "Pixel_6", "device": "oriole",
                                               "transport_id": "1"}
    assert rows["127.0.0.1:15601"].hint is None
    assert "Allow" in rows["127.0.0.1:15602"].hint
    assert "replug" in rows["127.0.0.1:15604"].hint
    assert "udev" in rows["00000000"].hint


# --- tfkit devices / tfkit flash against the stand-in phones ---------------------------------------------

def _cli(*args):
    from click.testing import CliRunner

    from tfkit.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_tfkit_devices_lists_attached_phones(adb_lab, phone, tmp_path):  # noqa: F811
    """Every phone the adb server knows: usable ones with their fingerprint, the others with what to do."""
    locked = adb_lab.start_phone("locked-list", unauthorized=True)
    try:
        run = _cli("devices", "--json", "--devices", _empty_devices_file(tmp_path))
        assert run.exit_code == 0, run.output
        rows = {r["address"]: r for r in json.loads(run.output)}
        ready = [r for r in rows.values() if r["reachable"] and r["address"].startswith("adb:")]
        assert ready and all(r["fingerprint"]["model"] == PROPS["ro.product.model"] for r in ready)
        assert all(r["fingerprint"]["abi"] == PROPS["ro.product.cpu.abi"] for r in ready)
        row = rows[f"adb:{locked.serial}"]
        assert row["reachable"] is False and row["reason"].startswith("unauthorized: ") and "Allow" in row["reason"]
        text = _cli("devices", "--devices", _empty_devices_file(tmp_path)).output
        line = next(x for x in text.splitlines() if x.startswith(ready[0]["address"]))
        assert PROPS["ro.product.model"] in line and "Android API" in line and "battery" in line
    finally:
        adb_lab.stop_phone(locked)


def _empty_devices_file(tmp_path: Path) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text("devices: {}\n")
    return path


def test_flash_to_a_phone_without_and_with_the_app(adb_lab, tmp_path):  # noqa: F811
    """Without the app: the model goes to /data/local/tmp/tfkit/models and the command says so; --apk
    installs the app (real `adb install`), then the model lands in the app's model folder, sha256-checked;
    a rerun copies nothing; --list shows it."""
    import zipfile

    from tests.unit.bench_tiny_models import write_clip_classifier

    fresh = adb_lab.start_phone("flash")
    try:
        model = write_clip_classifier(tmp_path / "model.tflite")
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        bare = _cli("flash", model, "--device", f"adb:{fresh.serial}", "--name", "tiny")
        assert bare.exit_code == 0, bare.output
        assert "not installed" in bare.output and "/data/local/tmp/tfkit/models" in bare.output
        assert fresh.path("/data/local/tmp/tfkit/models/tiny/model.tflite").read_bytes() == model.read_bytes()
        apk = tmp_path / "app-debug.apk"
        with zipfile.ZipFile(apk, "w") as z:
            z.writestr("standin-package.txt", "tfkit.demo")
        done = _cli("flash", model, "--device", f"adb:{fresh.serial}", "--name", "tiny", "--apk", apk)
        assert done.exit_code == 0, done.output
        where = "/sdcard/Android/data/tfkit.demo/files/models/tiny/model.tflite"
        assert "installed: app-debug.apk" in done.output and f"copied: model.tflite -> adb:{fresh.serial}:{where}" \
            in done.output and "note:" not in done.output
        assert fresh.path(where).read_bytes() == model.read_bytes()
        again = _cli("flash", model, "--device", f"adb:{fresh.serial}", "--name", "tiny")
        assert again.exit_code == 0 and "already there" in again.output and "nothing copied" in again.output
        listed = _cli("flash", "--list", "--device", f"adb:{fresh.serial}")
        assert listed.exit_code == 0 and "tiny" in listed.output and digest[:12] in listed.output
        bad = tmp_path / "broken.apk"
        bad.write_bytes(b"not a zip")
        refused = _cli("flash", model, "--device", f"adb:{fresh.serial}", "--apk", bad)
        assert refused.exit_code != 0 and refused.stderr.count("error:") == 1 and "INSTALL_PARSE_FAILED" in refused.stderr
    finally:
        adb_lab.stop_phone(fresh)


def test_flash_to_a_phone_that_is_not_attached_is_one_error_line(adb_lab, tmp_path):  # noqa: F811
    from tests.unit.bench_tiny_models import write_clip_classifier

    model = write_clip_classifier(tmp_path / "model.tflite")
    run = _cli("flash", model, "--device", "adb:127.0.0.1:1")
    assert run.exit_code != 0 and "Traceback" not in run.output
    assert [line for line in run.stderr.splitlines() if line.startswith("error:")] == run.stderr.strip().splitlines()
    assert "adb devices" in run.stderr
