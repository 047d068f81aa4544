"""runner.py --delegate: the delegate that ran is read from the interpreter's own execution plan,
and a delegate that cannot be loaded is an error naming the library, never a CPU fallback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfkit.bench.devices import runner_script

litert = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from tfkit._compat.keras import keras, tf

    K, TF = keras(), tf()
    K.utils.set_random_seed(0)
    x = K.Input(shape=(16, 16, 3), batch_size=1)
    h = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(8, 3, activation="relu")(x))
    path = tmp_path_factory.mktemp("delegates") / "tiny.tflite"
    path.write_bytes(TF.lite.TFLiteConverter.from_keras_model(K.Model(x, K.layers.Dense(3)(h))).convert())
    return path


def run_runner(*args: str, python: str = sys.executable) -> tuple[int, dict]:
    proc = subprocess.run([python, str(runner_script()), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return proc.returncode, json.loads(lines[0])


def plan(model: Path, resolver) -> list[str]:
    """The op names of the execution plan, as LiteRT reports it for this resolver, in this process."""
    it = litert.Interpreter(model_path=str(model), experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return [op["op_name"] for op in it._get_ops_details()]


def test_none_and_xnnpack_run_and_name_themselves(model, tmp_path):
    results = {}
    for delegate in ("none", "xnnpack", "default"):
        rc, r = run_runner("--model", str(model), "--runs", "5", "--delegate", delegate)
        assert rc == 0, r
        results[delegate] = r
    none, xnnpack, default = results["none"], results["xnnpack"], results["default"]
    assert none["delegate"] == "none" and xnnpack["delegate"] == "xnnpack"
    assert none["delegate_detail"]["requested"] == "none" and xnnpack["delegate_detail"]["library"] is None
    # The interpreter's own plan, read independently here: no DELEGATE node without the default
    # delegates, XNNPACK's nodes with them; the runner reports the same counts.
    without = plan(model, litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with_default = plan(model, litert.OpResolverType.AUTO)
    assert "DELEGATE" not in without and "CONV_2D" in without
    assert none["delegate_detail"]["partitions"] == 0
    assert xnnpack["delegate_detail"]["partitions"] == with_default.count("DELEGATE") >= 1
    # "default" names what ran: the runtime's default CPU delegate, XNNPACK here.
    assert default["delegate"] == "xnnpack" and "default delegate (XNNPACK)" in default["delegate_detail"]["note"]


def test_none_computes_the_same_answer(model, tmp_path):
    clips = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=clips, y=np.zeros(4, np.int64))
    logits = {}
    for delegate in ("none", "xnnpack"):
        pred = tmp_path / f"{delegate}.npz"
        rc, _ = run_runner("--model", str(model), "--runs", "1", "--delegate", delegate,
                           "--eval", str(tmp_path / "c.npz"), "--predictions-out", str(pred))
        assert rc == 0
        logits[delegate] = np.load(pred)["logits"]
    np.testing.assert_allclose(logits["none"], logits["xnnpack"], atol=1e-4)


def test_edgetpu_without_its_library_is_a_clear_error(model):
    rc, r = run_runner("--model", str(model), "--runs", "2", "--delegate", "edgetpu")
    assert rc == 1 and r["kind"] == "delegate" and "latency_ms" not in r
    assert "'libedgetpu.so.1'" in r["error"] and "apt-get install libedgetpu1-std" in r["error"]
    rc, r = run_runner("--model", str(model), "--delegate", "gpu", "--delegate-library", str(model))
    assert rc == 1 and r["kind"] == "delegate" and str(model) in r["error"]
    rc, r = run_runner("--model", str(model), "--delegate", "nnapi")
    assert rc == 1 and r["kind"] == "delegate" and "Android only" in r["error"]
    rc, r = run_runner("--model", str(model), "--delegate", "xnnpack", "--delegate-library", "x.so")
    assert rc == 1 and r["kind"] == "delegate" and "built into the interpreter" in r["error"]
    rc, r = run_runner("--model", str(model), "--delegate", "cuda")
    assert rc == 2 and r["kind"] == "usage" and "--delegate" in r["error"]


def test_tflite_runtime_214_turns_its_default_delegate_off_too(model):
    from tests.unit.test_bench_runner import tflite_runtime_python

    python = tflite_runtime_python()
    for delegate, partitions in (("none", 0), ("default", 1)):
        rc, r = run_runner("--model", str(model), "--runs", "3", "--runtime", "tflite_runtime", "--delegate", delegate,
                           python=python)
        assert rc == 0 and r["runtime"] == "tflite_runtime", r
        assert r["delegate_detail"]["partitions"] == partitions


def test_the_board_loads_the_libraries_the_delegate_providers_name():
    """The runner cannot import tfkit, so it keeps its own table of external delegate libraries: it
    must name the same library for each delegate as tfkit's provider does (and no other delegates)."""
    import importlib.util

    from tfkit.delegates.base import delegate_names, get_delegate

    spec = importlib.util.spec_from_file_location("board_delegates", runner_script().parent / "board_delegates.py")
    board_delegates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board_delegates)
    board = {name: library for name, (library, _) in board_delegates.EXTERNAL.items()}
    providers = {name: get_delegate(name).runner_library for name in delegate_names()
                 if name in board_delegates.DELEGATE_CHOICES}
    assert {name: lib for name, lib in providers.items() if lib} == {name: lib for name, lib in board.items() if lib}
    assert set(board) <= set(providers)
