"""The Transport layer without a board: argv quoting through a real sh, push/pull through this host
(LocalTransport), real write failures (a file-size limit), ssh's own words classified, and
RemoteDevice running a real model over LocalTransport: nothing in remote.py knows it is ssh."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tfkit.bench.devices.remote import RemoteDevice, flash, flashed, sha256_file
from tfkit.bench.devices.ssh import SshTransport
from tfkit.bench.devices.transport import (
    AuthFailed,
    CommandFailed,
    Completed,
    ConnectionLost,
    DeviceDiskFull,
    LocalTransport,
    Unreachable,
    write_failure,
)

NASTY = ["a b", "$(touch pwned)", "';rm -rf x'", "*", "~", 'quote"d', "back\\slash", "new\nline", "", "-n"]


def test_argv_reaches_the_device_shell_word_for_word(tmp_path):
    """What SshTransport sends is one string the board's sh splits back into exactly our argv."""
    argv = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *NASTY]
    sent = SshTransport("board").base_argv()  # the remote command goes after these
    assert sent[-2:] == ["--", "board"]
    command = shlex.join(argv)
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    import json

    assert json.loads(out) == NASTY and not (tmp_path / "pwned").exists()


def test_ssh_options_keep_the_users_config_and_share_one_connection():
    t = SshTransport("::1", user="pi", port=2222, ssh_config="~/boards/cfg", identity_file="~/.ssh/id_pi")
    argv = t.base_argv()
    assert argv[argv.index("-F") + 1] == os.path.expanduser("~/boards/cfg")
    options = {argv[i + 1].split("=")[0]: argv[i + 1].split("=", 1)[1] for i, a in enumerate(argv) if a == "-o"}
    assert options["BatchMode"] == "yes" and options["ControlMaster"] == "auto" and options["ControlPersist"]
    assert options["ControlPath"].startswith("/tmp/") and len(options["ControlPath"]) < 60
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "pi"
    assert argv[argv.index("-i") + 1] == os.path.expanduser("~/.ssh/id_pi") and t.label == "ssh:pi@[::1]:2222"


@pytest.mark.parametrize("stderr, kind", [
    ("ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n", Unreachable),
    ("ssh: Could not resolve hostname nohost.invalid: Name or service not known\r\n", Unreachable),
    ("ssh: connect to host 10.255.255.1 port 22: Connection timed out\r\n", Unreachable),
    ("tfkit-board@127.0.0.1: Permission denied (publickey).\r\n", AuthFailed),
    ("Host key verification failed.\r\n", AuthFailed),
    ("Connection to 127.0.0.1 closed by remote host.\r\n", ConnectionLost),
    ("client_loop: send disconnect: Broken pipe\r\n", ConnectionLost),
])
def test_ssh_exit_255_is_classified_by_its_own_words(stderr, kind):
    error = SshTransport("board", port=22).classify(stderr)
    assert type(error) is kind and error.label == "ssh:board:22" and stderr.strip() in str(error)


def test_a_real_refused_port_is_unreachable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(Unreachable, match="Connection refused") as error:
            SshTransport("127.0.0.1", port=port, connect_timeout=5).exec(["true"], timeout=30)
    assert error.value.phase == "connect" and f"ssh -p {port} 127.0.0.1" in str(error.value)


def test_local_push_and_pull_are_whole_or_nothing(tmp_path):
    t = LocalTransport()
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 1000)
    (tmp_path / "dev").mkdir()
    t.push(blob, str(tmp_path / "dev" / "copy bin"))
    assert (tmp_path / "dev" / "copy bin").read_bytes() == blob.read_bytes()
    t.pull(str(tmp_path / "dev" / "copy bin"), tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()
    with pytest.raises(CommandFailed, match="cannot read"):
        t.pull(str(tmp_path / "dev" / "missing"), tmp_path / "none.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "blob.bin", "dev"]  # no temp files left
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["copy bin"]


def test_a_real_file_size_limit_is_a_full_device_disk(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(64 * 1024))
    done = LocalTransport().shell('ulimit -f 8; cat > "$1"', str(tmp_path / "out"), timeout=30, input_path=blob)
    assert done.rc != 0
    error = write_failure("ssh:pi@board", str(tmp_path / "out"), done, phase="push")
    assert isinstance(error, DeviceDiskFull) and "the device disk is full" in str(error) and "Free space" in str(error)
    enospc = Completed(1, "", "cat: write error: No space left on device\n")
    assert isinstance(write_failure("b", "/x/y", enospc, phase="push"), DeviceDiskFull)
    other = write_failure("b", "/x/y", Completed(1, "", "cat: /x/y: Permission denied\n"), phase="push")
    assert type(other) is CommandFailed and "Permission denied" in str(other)


def test_flash_over_any_transport(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" * 100)
    first = flash(LocalTransport(), model, "m", python=sys.executable)
    again = flash(LocalTransport(), model, "m", python=sys.executable)
    assert first["copied"] and not again["copied"] and first["sha256"] == sha256_file(model)
    assert flashed(LocalTransport()) == [{"name": "m", "file": "m.tflite", "size_bytes": 400,
                                          "sha256": sha256_file(model)}]


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    from tfkit._compat.keras import keras, tf

    K, TF = keras(), tf()
    x = K.Input(shape=(8, 8, 3), batch_size=1)
    path = tmp_path_factory.mktemp("transport") / "tiny.tflite"
    path.write_bytes(TF.lite.TFLiteConverter.from_keras_model(
        K.Model(x, K.layers.Dense(3)(K.layers.GlobalAveragePooling2D()(x)))).convert())
    return path


def test_remote_device_runs_over_a_transport_that_is_not_ssh(tiny_tflite, tmp_path):
    from tfkit.bench import BenchConfig, benchmark

    pytest.importorskip("ai_edge_litert.interpreter")
    device = RemoteDevice(LocalTransport(), python=sys.executable, workdir=str(tmp_path / "cache"), name="here")
    results = benchmark([("a", "float32", tiny_tflite), ("b", "float32", tiny_tflite)], device=device,
                        config=BenchConfig(threads=1, warmup=1, runs=3), progress=False)
    assert [r.device for r in results] == ["here", "here"] and all(r.latency_ms.p50 > 0 for r in results)
    cache = tmp_path / "cache"
    assert [p.name for p in (cache / "blobs").glob("*.tflite")] == [f"{sha256_file(tiny_tflite)}.tflite"]
    assert list((cache / "runs").iterdir()) == [] and len(list((cache / "runner").iterdir())) == 1
    assert (next((cache / "runner").iterdir()) / "runner.py").is_file()
    assert device.fingerprint()["cores"] == os.cpu_count()


def test_devices_yaml_ssh_options(tmp_path):
    from tfkit.bench.devices.config import DevicesFileError, load_devices
    from tfkit.bench.devices.kinds import open_device

    path = tmp_path / "devices.yaml"
    path.write_text("devices:\n  pi:\n    address: ssh:pi@board:2222\n    ssh_config: ~/boards/cfg\n"
                    "    identity_file: /keys/id_pi\n    workdir: /data/tfkit\n    python: ~/venv/bin/python\n")
    entry = load_devices(path)["pi"]
    assert (entry.ssh_config, entry.identity_file, entry.workdir) == ("~/boards/cfg", "/keys/id_pi", "/data/tfkit")
    device = open_device("pi", devices_file=path)
    argv = device.transport.base_argv()
    assert argv[argv.index("-F") + 1] == os.path.expanduser("~/boards/cfg") and "/keys/id_pi" in argv
    assert (device.workdir, device.python, device.name) == ("/data/tfkit", "~/venv/bin/python", "pi")
    assert device.transport.label == "pi (ssh:pi@board:2222)"
    for text, line, needle in (
        ("devices:\n  here:\n    address: local\n    ssh_config: cfg\n", 4, "applies to ssh devices only"),
        ("devices:\n  pi:\n    address: ssh:b\n    identity_file: 3\n", 4, "must be a path"),
        ("devices:\n  pi:\n    address: ssh:b\n    workdr: /x\n", 4, "Did you mean 'workdir'"),
    ):
        path.write_text(text)
        with pytest.raises(DevicesFileError, match=needle) as error:
            load_devices(path)
        assert f"{path}:{line}" in str(error.value)
