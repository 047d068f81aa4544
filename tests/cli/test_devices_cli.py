"""`tfkit devices [--json]` and `tfkit bench --device` through the one address parser."""
from __future__ import annotations

import json
import os
import sys

import pytest
from click.testing import CliRunner

from tfkit.cli.main import cli

DEVICES_YAML = """\
devices:
  pi5:
    address: ssh:pi@127.0.0.1:1
    threads: 4
  phone:
    address: adb:R58M123ABC
  here:
    address: local
    python: {python}
"""


@pytest.fixture(autouse=True)
def private_adb_server(monkeypatch):
    """`tfkit devices` asks adb for attached phones, and adb starts its server: a private one per test
    (no phone attached), stopped after, so these tests never touch a developer's adb server."""
    import shutil
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    yield
    if shutil.which("adb"):
        subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=30, check=False)


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def test_devices_json_lists_local_and_configured_devices(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(DEVICES_YAML.format(python=sys.executable))
    result = invoke("devices", "--json", "--devices", path)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == ["local", "pi5", "phone", "here"]
    assert all({"address", "reachable", "fingerprint", "name", "reason"} <= r.keys() for r in rows)
    local, pi5, phone, here = rows
    assert local["address"] == "local" and local["reachable"] is True and local["reason"] is None
    assert local["fingerprint"]["cores"] == os.cpu_count()
    assert local["fingerprint"]["kernel"] == os.uname().release
    assert pi5["address"] == "ssh:pi@127.0.0.1:1" and pi5["reachable"] is False  # nothing listens on port 1
    assert pi5["fingerprint"] is None and "cannot reach the device" in pi5["reason"]
    assert "Connection refused" in pi5["reason"]
    assert pi5["options"]["threads"] == 4
    assert phone["reachable"] is False and phone["fingerprint"] is None  # no such phone attached
    assert "adb:R58M123ABC: adb cannot reach the phone" in phone["reason"] and "adb devices" in phone["reason"]
    assert "daemon" not in phone["reason"]
    assert here["reachable"] is True and here["fingerprint"]["runtimes"]["python_version"]


def test_devices_text_and_bad_file(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(DEVICES_YAML.format(python=tmp_path / "no-python"))
    result = invoke("devices", "--devices", path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("local: ") and f"{os.cpu_count()} cores" in lines[0]
    assert lines[1].startswith("pi5 (ssh:pi@127.0.0.1:1): not reachable: ") and "cannot reach the device" in lines[1]
    assert lines[3].startswith("here (local): not reachable: cannot run the device's python")
    path.write_text("devices:\n  pi5:\n    address: ssh:pi@h\n    thread: 4\n")
    bad = invoke("devices", "--devices", path)
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (f"error: {path}:4: devices.pi5.thread: unknown key 'thread'. Did you mean 'threads'? "
                                  "Allowed: address, app_package, benchmark_binary, big_cores, cpu_affinity, delegate, "
                                  "identity_file, python, runtime, ssh_config, threads, workdir.")


def test_bench_on_an_unsupported_or_malformed_address_is_one_error_line(tmp_path):
    model = tmp_path / "x.tflite"
    model.write_bytes(b"not even a model")  # the address is checked before the file is read
    for address, words in (("jetson:nano", "error: Bad device address 'jetson:nano': unknown device kind 'jetson'"),
                           ("ssh:h:0", "error: Bad device address 'ssh:h:0': port"),
                           ("pi9", "error: Unknown device 'pi9'")):
        result = invoke("bench", model, "--device", address, "--out", tmp_path / "d",
                        env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
        assert result.exit_code == 2, (address, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(words), result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_bench_on_a_named_ssh_device_that_cannot_be_reached_is_one_error_line(tmp_path):
    """The name resolves to its ssh address, and the refused connection is one error naming the device
    and what to check; --out is not written (the partial results go to its .failed folder)."""
    from tests.unit.bench_tiny_models import write_clip_classifier

    (tmp_path / "cfg" / "tfkit").mkdir(parents=True)
    (tmp_path / "cfg" / "tfkit" / "devices.yaml").write_text(DEVICES_YAML.format(python=sys.executable))
    model = write_clip_classifier(tmp_path / "x.tflite")
    result = invoke("bench", model, "--device", "pi5", "--out", tmp_path / "d", "--rounds", "1",
                    env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed on pi5" in errors[0], result.stderr
    assert "pi5 (ssh:pi@127.0.0.1:1): cannot reach the device" in result.stderr
    assert "Connection refused" in result.stderr and not (tmp_path / "d").exists()


def test_a_recipe_bench_device_goes_through_the_same_parser(tmp_path):
    from tests.unit.test_recipe import TINY, error_of, write

    bench = "  - step: bench\n    inputs: [data, convert]\n    with: {device: %s}\n"
    from tfkit.recipe import load_recipe

    load_recipe(write(tmp_path, TINY + bench % "ssh:pi@board"))  # a board address is a valid bench device
    load_recipe(write(tmp_path, TINY + bench % "adb:R58M123ABC"))  # and so is a phone
    message = error_of(write(tmp_path, TINY + bench % "'jetson:nano'"))
    assert message.startswith(f"{tmp_path / 'tiny.yaml'}:16: steps[4].with.device: Bad device address 'jetson:nano'")
    assert "Accepted forms" in error_of(write(tmp_path, TINY + bench % "'ssh:board:0'"))


def test_a_kind_without_an_installed_plugin_is_one_clear_error(tmp_path):
    """The unsupported-kind path stays for plug-in kinds that are not (or no longer) installed."""
    from tfkit.bench.devices.address import DeviceAddress
    from tfkit.bench.devices.kinds import Resolved, check_runnable, unsupported_reason
    from tfkit.errors import UnsupportedDeviceError

    gone = DeviceAddress("jetson", target="nano", name="nano1")
    assert "no installed device kind 'jetson'" in unsupported_reason(gone)
    with pytest.raises(UnsupportedDeviceError, match=r"^nano1 \(jetson:nano\): no installed device kind"):
        check_runnable(Resolved(gone))
    assert unsupported_reason(DeviceAddress("adb", serial="R58M")) is None


def test_bench_on_a_phone_that_is_not_attached_is_one_error_line(tmp_path):
    from tests.unit.bench_tiny_models import write_clip_classifier

    model = write_clip_classifier(tmp_path / "x.tflite")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"#!/bin/sh\n")
    result = invoke("bench", model, "--device", "adb:R58M123ABC", "--benchmark-binary", binary, "--rounds", "1",
                    "--out", tmp_path / "d", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed on adb:R58M123ABC" in errors[0], result.stderr
    assert "adb devices" in result.stderr and not (tmp_path / "d").exists()


def test_tfkit_devices_does_not_import_tensorflow():
    import subprocess

    code = ("from tfkit.cli.main import cli; from click.testing import CliRunner; "
            "r = CliRunner().invoke(cli, ['devices', '--json']); assert r.exit_code == 0, r.output; "
            "import sys; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


class _Captured(Exception):
    pass


def test_bench_takes_a_named_devices_threads_and_runtime_unless_given(tmp_path, monkeypatch):
    """The step's boundary (run_step) is replaced to see the config the CLI built; nothing else is."""
    import tfkit.cli.steps as steps_cli
    import tfkit.steps

    def capture(step, inputs, out, ctx, force=False):
        raise _Captured(step.config)

    monkeypatch.setattr(tfkit.steps, "run_step", capture)
    monkeypatch.setattr(steps_cli, "_tflite_models", lambda paths: [])
    (tmp_path / "cfg" / "tfkit").mkdir(parents=True)
    (tmp_path / "cfg" / "tfkit" / "devices.yaml").write_text(
        f"devices:\n  old:\n    address: local\n    python: {sys.executable}\n    threads: 3\n"
        "    runtime: tflite_runtime\n")
    model = tmp_path / "x.tflite"
    model.write_bytes(b"x")

    def config_for(*extra):
        result = CliRunner().invoke(cli, ["bench", str(model), "--device", "old", "--out", str(tmp_path / "d"),
                                          *extra], env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
        assert isinstance(result.exception, _Captured), result.output
        return result.exception.args[0]

    named = config_for()
    assert (named.device, named.threads, named.runtime) == ("old", 3, "tflite_runtime")
    given = config_for("--threads", "1", "--runtime", "litert")
    assert (given.threads, given.runtime) == (1, "litert")


@pytest.mark.parametrize("entry, words", [
    ("  pi:\n    address: ssh:pi@h\n    benchmark_binary: /x/bm\n", "`benchmark_binary` applies to adb devices only"),
    ("  p:\n    address: adb:R58M\n    identity_file: ~/.ssh/id\n", "`identity_file` applies to ssh devices only"),
    ("  p:\n    address: adb:R58M\n    app_package: not a package\n", "must be an Android package name"),
    ("  p:\n    address: adb:R58M\n    big_cores: zz\n", "is not a taskset mask"),
])
def test_phone_options_in_devices_yaml_are_checked(tmp_path, entry, words):
    path = tmp_path / "devices.yaml"
    path.write_text(f"devices:\n{entry}")
    result = invoke("devices", "--devices", path)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {path}:4: ") and words in result.stderr
