"""Benchmarks on a real Linux board over ssh: Debian's sshd on loopback (tests/board.py), the system
ssh client, the board's own python (tflite-runtime 2.14, numpy<2). Every fault here is a real one on
that sshd: it is killed mid-run, its disk fills mid-copy, its python lacks numpy, its runtime is too
old for the model, the host does not answer, the key is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.board import descendants, start_board
from tfkit.bench import BenchConfig, benchmark
from tfkit.bench.devices.kinds import open_device
from tfkit.bench.devices.local import LocalDevice
from tfkit.bench.devices.remote import sha256_file
from tfkit.errors import BenchmarkError

CLIP_SHAPE = (4, 16, 16, 3)
CLASSES = 3
FAST = BenchConfig(threads=1, warmup=1, runs=5, runtime="tflite_runtime")
TFKIT = [sys.executable, "-m", "tfkit.cli.main"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny clip classifiers: float32, full int8, a big float32 (800 KB of weights), and the int8 one
    with CONV_2D raised to version 8 (added after tflite-runtime 2.14), as a newer converter writes it."""
    from tfkit._compat.keras import keras, tf
    from tfkit.convert.flatbuffer import op_code, read_model, write_model

    K, TF = keras(), tf()
    K.utils.set_random_seed(0)
    clip = K.Input(shape=CLIP_SHAPE, batch_size=1)
    h = K.layers.Reshape((CLIP_SHAPE[0] * CLIP_SHAPE[1], CLIP_SHAPE[2], 3))(clip)
    h = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(8, 3, activation="relu")(h))
    classifier = K.Model(clip, K.layers.Dense(CLASSES)(h))
    big = K.Model(clip, K.layers.Dense(CLASSES)(K.layers.Dense(64)(K.layers.Flatten()(clip))))

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(16):
            yield [rng.uniform(-1, 1, (1, *CLIP_SHAPE)).astype(np.float32)]

    out = tmp_path_factory.mktemp("board_models")
    paths = {name: out / f"{name}.tflite" for name in ("float32", "int8", "big", "too_new")}
    paths["float32"].write_bytes(TF.lite.TFLiteConverter.from_keras_model(classifier).convert())
    paths["big"].write_bytes(TF.lite.TFLiteConverter.from_keras_model(big).convert())
    converter = TF.lite.TFLiteConverter.from_keras_model(classifier)
    converter.optimizations = [TF.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [TF.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = TF.int8
    paths["int8"].write_bytes(converter.convert())
    model = read_model(paths["int8"].read_bytes())
    for i, code in enumerate(model.operatorCodes):
        if op_code(model, i)[0] == "CONV_2D":
            code.version = 8
    for entry in model.metadata or []:  # what the converter records for that op version
        if entry.name == b"min_runtime_version":
            model.buffers[entry.buffer].data = np.frombuffer(b"2.15.0".ljust(16, b"\0"), dtype=np.uint8)
    paths["too_new"].write_bytes(write_model(model))
    return paths


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(12, *CLIP_SHAPE), dtype=np.uint8)
    path = tmp_path_factory.mktemp("board_clips") / "clips.npz"
    np.savez(path, x=x, y=rng.integers(0, CLASSES, size=12))
    return path


def tfkit_cli(args: list[str], devices_yaml: Path, *, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `tfkit` command in a child process, with devices.yaml as the user's config file."""
    config_home = devices_yaml.parent / "xdg"
    (config_home / "tfkit").mkdir(parents=True, exist_ok=True)
    (config_home / "tfkit" / "devices.yaml").write_text(devices_yaml.read_text())
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    return subprocess.run([*TFKIT, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The CLI failed with exactly one `error:` line and no traceback; returns the whole message."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr[proc.stderr.index("error:"):]


def test_bench_on_the_board_is_the_host_runner_under_the_board_python(board, models, clips, tmp_path):
    device = open_device("board", devices_file=board.devices_yaml(tmp_path / "devices.yaml"))
    on_board = device.run(models["int8"], eval_npz=clips, config=FAST, name="tiny", precision="int8")
    here = LocalDevice(python=board.parts.python).run(models["int8"], eval_npz=clips, config=FAST)
    assert on_board.runtime == here.runtime == "tflite_runtime 2.14.0"
    assert on_board.accuracy == here.accuracy and on_board.device == "board"
    assert on_board.size_bytes == models["int8"].stat().st_size
    fingerprint = device.fingerprint()
    assert fingerprint["runtimes"]["tflite_runtime"] == "2.14.0" and fingerprint["cores"] >= 1


def test_an_unchanged_model_is_not_sent_again_and_runs_leave_nothing(board, models, tmp_path):
    devices = board.devices_yaml(tmp_path / "devices.yaml", workdir=str(board.home / "cache-once"))
    first = open_device("board", devices_file=devices)
    first.run(models["float32"], config=FAST)
    cache = board.home / "cache-once"
    blob = cache / "blobs" / f"{sha256_file(models['float32'])}.tflite"
    before = blob.stat()
    again = open_device("board", devices_file=devices)  # a new tfkit run: nothing cached in this process
    result = again.run(models["float32"], config=FAST)
    after = blob.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not written again
    assert result.latency_ms.p50 > 0 and list((cache / "runs").iterdir()) == []
    assert not list(cache.rglob("*.part")) and not list(cache.rglob("*.tmp.*"))


def test_tfkit_bench_on_the_board_end_to_end(board, models, clips, tmp_path):
    devices = board.devices_yaml(tmp_path / "devices.yaml", runtime="tflite_runtime")
    proc = tfkit_cli(["bench", str(models["int8"]), str(models["float32"]), "--device", "board", "--runs", "5",
                      "--warmup", "1", "--out", str(tmp_path / "bench"), "--quiet"], devices)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [r["name"] for r in results] == ["int8", "float32"]
    for r in results:
        if isinstance(r["device"], dict):  # {"address", "name", "fingerprint"}: the board's own, read over ssh
            assert r["device"]["address"] == board.address, r["device"]
            assert r["device"]["fingerprint"]["runtimes"]["tflite_runtime"] == "2.14.0"
        else:
            assert r["device"] == "board"
        assert r["runtime"] == "tflite_runtime 2.14.0" and r["latency_ms"]["p50"] > 0 and r["peak_rss_mb"] > 0


def _kill_when_running(board, marker: str, done: threading.Event, seen: list, *, sessions_only=False) -> None:
    """Kill the board's sshd and its sessions (or only the sessions) once a runner.py for `marker` runs there."""
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline and board.proc is not None:
        for pid in descendants(board.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "runner.py" in cmdline and marker in cmdline:
                seen.append(cmdline)
                (board.kill_sessions if sessions_only else board.kill)()
                return
        time.sleep(0.01)


def test_sshd_killed_mid_run_keeps_earlier_results_and_names_host_and_phase(board_parts_or_skip, models, tmp_path):
    board = start_board(board_parts_or_skip)
    try:
        device = open_device("board", devices_file=board.devices_yaml(tmp_path / "devices.yaml"))
        done, seen = threading.Event(), []
        killer = threading.Thread(target=_kill_when_running,
                                  args=(board, sha256_file(models["float32"]), done, seen), daemon=True)
        killer.start()
        entries = [("first", "int8", models["int8"]), ("second", "float32", models["float32"]),
                   ("third", "int8", models["int8"])]
        with pytest.raises(BenchmarkError) as error:
            benchmark(entries, device=device, config=BenchConfig(runs=300, warmup=1, runtime="tflite_runtime"),
                      progress=False)
        done.set()
        killer.join()
        assert seen, "the runner of the second model never ran on the board"
        message = str(error.value)
        assert "2 of 3 models failed" in message
        assert f"board ({board.address}): connection lost during run (retried once" in message
        assert [(r.name, r.precision) for r in error.value.results] == [("first", "int8")]
    finally:
        board.stop()


def test_a_link_that_drops_once_is_retried_and_the_model_measured(board_parts_or_skip, models, tmp_path):
    board = start_board(board_parts_or_skip)
    try:
        device = open_device("board", devices_file=board.devices_yaml(tmp_path / "devices.yaml"))
        done, seen = threading.Event(), []
        killer = threading.Thread(target=_kill_when_running, args=(board, sha256_file(models["float32"]), done, seen),
                                  kwargs={"sessions_only": True}, daemon=True)
        killer.start()
        results = benchmark([("first", "int8", models["int8"]), ("second", "float32", models["float32"])],
                            device=device, config=BenchConfig(runs=300, warmup=1, runtime="tflite_runtime"),
                            progress=False)
        done.set()
        killer.join()
        assert len(seen) == 1, "the second model's runner never ran on the board"
        assert [(r.name, r.latency_ms.runs) for r in results] == [("first", 300), ("second", 300)]
        assert list((board.home / "cache" / "runs").iterdir()) == []
    finally:
        board.stop()


def _tmpfs(path: Path, size: int, parts) -> bool:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},uid={parts.uid},gid={parts.gid},mode=755",
                           "tmpfs", str(path)], capture_output=True, check=False)
    return proc.returncode == 0


def test_a_disk_that_fills_mid_copy_says_the_device_disk_is_full(board_parts_or_skip, models, tmp_path):
    from tfkit.bench.devices.base import runner_files

    runner_bytes = sum(p.stat().st_size for p in runner_files())
    room = 2 * runner_bytes + 256 * 1024  # the runner set (blobs + its folder) fits; the 800 KB model does not
    assert models["big"].stat().st_size > 3 * 256 * 1024
    parts = board_parts_or_skip
    small = Path(f"/tmp/tfkit-small-disk-{os.getpid()}")
    mounted = os.getuid() == 0 and _tmpfs(small, room, parts)
    # A real small disk where mount works; else a real file-size limit on the board's sessions.
    board = start_board(parts, prlimit_fsize=None if mounted else room // 2)
    try:
        workdir = str(small if mounted else board.home / "cache")
        devices = board.devices_yaml(tmp_path / "devices.yaml", workdir=workdir, runtime="tflite_runtime")
        device = open_device("board", devices_file=devices)
        with pytest.raises(BenchmarkError) as error:
            device.run(models["big"], config=FAST)
        message = str(error.value)
        assert "the device disk is full" in message and "Free space in" in message and board.address in message
        assert not list(Path(workdir).rglob("*.part*")) and not list(Path(workdir).rglob("*.tmp.*"))
        proc = tfkit_cli(["bench", str(models["big"]), "--device", "board", "--out", str(tmp_path / "b")], devices)
        assert "the device disk is full" in one_error_line(proc)
    finally:
        board.stop()
        if mounted:
            subprocess.run(["umount", str(small)], check=False)
        if small.is_dir():
            small.rmdir()


def test_a_board_without_numpy_says_what_to_install(board, models, tmp_path):
    bare = board.home / "bare-venv"
    subprocess.run(["setpriv", f"--reuid={board.parts.user}", f"--regid={board.parts.user}", "--init-groups",
                    "/usr/bin/python3", "-m", "venv", "--without-pip", str(bare)] if os.getuid() == 0 else
                   ["/usr/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True, cwd="/")
    devices = board.devices_yaml(tmp_path / "devices.yaml", python=str(bare / "bin" / "python"))
    with pytest.raises(BenchmarkError) as error:
        open_device("board", devices_file=devices).run(models["int8"], config=FAST)
    assert "[runtime_missing]" in str(error.value) and "numpy" in str(error.value)
    message = one_error_line(tfkit_cli(["bench", str(models["int8"]), "--device", "board", "--out",
                                        str(tmp_path / "b")], devices))
    assert "numpy is not importable" in message and "Install an interpreter on the device" in message


def test_a_model_too_new_for_tflite_runtime_2_14_says_what_to_do(board, models, tmp_path):
    from tfkit.convert.metadata import describe_file

    assert describe_file(models["too_new"])["tflite_runtime_2_14"]["verdict"] == "no"  # inspect predicts it
    devices = board.devices_yaml(tmp_path / "devices.yaml", runtime="tflite_runtime")
    message = one_error_line(tfkit_cli(["bench", str(models["int8"]), str(models["too_new"]), "--device", "board",
                                        "--runs", "3", "--warmup", "1", "--out", str(tmp_path / "b")], devices))
    assert "[unsupported_op]" in message and "CONV_2D" in message and "version '8'" in message
    assert "ai-edge-litert" in message
    # The model measured before the failure is kept, beside the step's log, in <out>.failed/.
    assert not (tmp_path / "b").exists()
    kept = json.loads((tmp_path / "b.failed" / "results.partial.json").read_text())
    assert [r["name"] for r in kept] == ["int8"] and kept[0]["latency_ms"]["p50"] > 0


def test_an_unreachable_host_and_a_bad_key_are_one_error_line(board_parts_or_skip, models, tmp_path):
    from tests.board import free_port

    closed = free_port()
    unreachable = tmp_path / "unreachable.yaml"
    unreachable.write_text(f"devices:\n  board:\n    address: ssh:127.0.0.1:{closed}\n")
    message = one_error_line(tfkit_cli(["bench", str(models["int8"]), "--device", "board", "--out",
                                        str(tmp_path / "u")], unreachable))
    assert f"(ssh:127.0.0.1:{closed}): cannot reach the device" in message and "Connection refused" in message
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    board = start_board(board_parts_or_skip)  # its own sshd: no shared connection a good key opened before
    try:
        keyless = tmp_path / "ssh_config"  # the board's client config without its good key
        keyless.write_text("".join(line for line in board.ssh_config.read_text().splitlines(keepends=True)
                                   if "IdentityFile" not in line))
        bad_key = board.devices_yaml(tmp_path / "bad_key.yaml", identity_file=str(stranger))
        bad_key.write_text(bad_key.read_text().replace(str(board.ssh_config), str(keyless)))
        message = one_error_line(tfkit_cli(["bench", str(models["int8"]), "--device", "board", "--out",
                                            str(tmp_path / "k")], bad_key))
        assert "ssh was refused" in message and "Permission denied" in message and str(stranger) in message
    finally:
        board.stop()


def test_a_board_that_disappears_mid_bench_is_one_error_line(board_parts_or_skip, models, tmp_path):
    board = start_board(board_parts_or_skip)
    try:
        devices = board.devices_yaml(tmp_path / "devices.yaml", runtime="tflite_runtime")
        done, seen = threading.Event(), []
        killer = threading.Thread(target=_kill_when_running,
                                  args=(board, sha256_file(models["float32"]), done, seen), daemon=True)
        killer.start()
        proc = tfkit_cli(["bench", str(models["int8"]), str(models["float32"]), "--device", "board", "--runs", "300",
                          "--out", str(tmp_path / "b")], devices)
        done.set()
        killer.join()
        assert seen, "the runner of the second model never ran on the board"
        message = one_error_line(proc)
        assert f"board ({board.address}): connection lost during run (retried once" in message
        assert "not run, the device was lost earlier" in message
    finally:
        board.stop()


def test_tfkit_devices_lists_the_board_with_its_fingerprint(board, tmp_path):
    python = board.parts.python
    # A python under the board user's home, written with ~/ as users do in devices.yaml.
    written = f"~/{python.relative_to(board.parts.home)}" if python.is_relative_to(board.parts.home) else str(python)
    devices = board.devices_yaml(tmp_path / "devices.yaml", python=written)
    proc = subprocess.run([*TFKIT, "devices", "--json", "--devices", str(devices)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout) if r["name"] == "board")
    assert row["reachable"] is True and row["address"] == board.address, row
    fingerprint = row["fingerprint"]
    assert fingerprint["runtimes"]["tflite_runtime"] == "2.14.0" and fingerprint["runtimes"]["numpy"].startswith("1.")
    assert fingerprint["kernel"] == os.uname().release and fingerprint["cores"] >= 1
