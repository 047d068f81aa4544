"""runner.py, LocalDevice and benchmark() end to end, on tiny real .tflite models built here.

Each runner call is a real child process with ai_edge_litert; expected accuracies come from
running the same models directly with ai_edge_litert in this process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfkit.bench import BenchConfig, benchmark
from tfkit.bench.devices import DEVICES, runner_script
from tfkit.bench.devices.local import LocalDevice
from tfkit.errors import BenchmarkError, UnknownNameError

litert = pytest.importorskip("ai_edge_litert.interpreter")

CLIP_SHAPE = (4, 16, 16, 3)
CLASSES = 3
FAST = BenchConfig(threads=1, warmup=1, runs=7)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """float32 and full-int8 (int8 I/O) clip classifiers, and a two-input model."""
    from tfkit._compat.keras import keras, tf

    K, TF = keras(), tf()
    K.utils.set_random_seed(0)
    clip = K.Input(shape=CLIP_SHAPE, batch_size=1)
    h = K.layers.Reshape((CLIP_SHAPE[0] * CLIP_SHAPE[1], CLIP_SHAPE[2], 3))(clip)  # fold T into H
    h = K.layers.Conv2D(8, 3, activation="relu")(h)
    h = K.layers.GlobalAveragePooling2D()(h)
    classifier = K.Model(clip, K.layers.Dense(CLASSES)(h))

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(16):
            yield [rng.uniform(-1, 1, (1, *CLIP_SHAPE)).astype(np.float32)]

    out = tmp_path_factory.mktemp("models")
    paths = {name: out / f"{name}.tflite" for name in ("float32", "int8", "multi")}
    paths["float32"].write_bytes(TF.lite.TFLiteConverter.from_keras_model(classifier).convert())
    converter = TF.lite.TFLiteConverter.from_keras_model(classifier)
    converter.optimizations = [TF.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [TF.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = TF.int8
    paths["int8"].write_bytes(converter.convert())

    frame = K.Input(shape=(16, 16, 3), batch_size=1, name="frame")
    state = K.Input(shape=(8,), batch_size=1, name="state")
    pooled = K.layers.GlobalAveragePooling2D()(K.layers.Conv2D(4, 3)(frame))
    two_inputs = K.Model([frame, state], K.layers.Dense(CLASSES)(K.layers.Concatenate()([pooled, state])))
    paths["multi"].write_bytes(TF.lite.TFLiteConverter.from_keras_model(two_inputs).convert())
    return paths


@pytest.fixture(scope="module")
def clips():
    """Uniform noise: the int8 model's calibration distribution, so int8 tracks float closely."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(8, *CLIP_SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def tinted_clips():
    """Noise over a random colour per clip: the tiny models' predictions differ between these."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(8, *CLIP_SHAPE))
    colours = rng.integers(0, 256, size=(8, 1, 1, 1, 3))
    return np.clip(noise // 4 + colours * 3 // 4, 0, 255).astype(np.uint8)


def run_runner(*args: str, python: str = sys.executable) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [python, str(runner_script()), *args], capture_output=True, text=True, timeout=120, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"stdout must be exactly one JSON line, got {proc.stdout!r}"
    return proc, json.loads(lines[0])


def direct_logits(model: Path, clips: np.ndarray, normalization: str = "symmetric") -> np.ndarray:
    """The model's float logits per clip, computed here without the runner."""
    interpreter = litert.Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, offset = {"symmetric": (2 / 255, -1.0), "unit": (1 / 255, 0.0)}[normalization]
    logits = []
    for clip in clips:
        x = clip[None].astype(np.float32) * np.float32(scale) + np.float32(offset)
        if inp["dtype"] == np.int8:
            s, zp = inp["quantization"]
            x = np.clip(np.round(x / np.float32(s) + np.float32(zp)), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if y.dtype == np.int8:
            s, zp = out["quantization"]
            y = (y.astype(np.float32) - zp) * s
        logits.append(y.reshape(-1))
    return np.stack(logits)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_runner_timing_fields_are_sane(models, precision, tmp_path):
    json_out = tmp_path / "r.json"
    proc, r = run_runner("--model", str(models[precision]), "--threads", "3", "--warmup", "2",
                         "--runs", "11", "--json-out", str(json_out))
    assert proc.returncode == 0, proc.stderr
    lat = r["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["runs"] == 11 and lat["method"] == "nearest-rank"
    assert r["init_ms"] > 0 and r["first_inference_ms"] > 0
    assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0
    assert r["model_size_bytes"] == models[precision].stat().st_size
    assert r["threads"] == 3 and r["warmup_runs"] == 2
    assert r["runtime"] == "ai_edge_litert" and r["runtime_version"] == litert_version()
    assert r["inputs"][0]["dtype"] == precision and r["inputs"][0]["shape"] == [1, *CLIP_SHAPE]
    assert r["eval"] is None
    assert json.loads(json_out.read_text()) == r
    assert "[tfkit-runner]" in proc.stderr  # human logs go to stderr


def litert_version() -> str:
    import ai_edge_litert

    return ai_edge_litert.__version__


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_eval_accuracy_matches_direct_interpreter(models, tinted_clips, precision, tmp_path):
    predicted = direct_logits(models[precision], tinted_clips).argmax(axis=1)
    labels = predicted.copy()
    labels[5:] = (predicted[5:] + 1) % CLASSES  # the last 3 are wrong on purpose -> 5/8
    # A runner that ignored its input and always answered one class would not score 5/8 here.
    assert all(np.mean(labels == c) != 5 / 8 for c in range(CLASSES)), (predicted, labels)
    npz = tmp_path / "clips.npz"
    np.savez(npz, x=tinted_clips, y=labels.astype(np.int64))

    result = LocalDevice().run(models[precision], eval_npz=npz, config=FAST, name="tiny", precision=precision)
    assert result.accuracy == pytest.approx(5 / 8)
    assert result.extra["eval"]["correct"] == 5 and result.extra["eval"]["logits_shape"] == [8, CLASSES]

    limited = LocalDevice().run(models[precision], eval_npz=npz, config=BenchConfig(runs=2, eval_limit=4))
    assert limited.accuracy == 1.0 and limited.extra["eval"]["clips"] == 4


def test_int8_input_quantization_tracks_float_model(models, clips, tmp_path):
    np.savez(tmp_path / "c.npz", x=clips, y=np.zeros(len(clips), np.int64))
    saved = {}
    for precision in ("float32", "int8"):
        pred = tmp_path / f"{precision}_pred.npz"
        proc, r = run_runner("--model", str(models[precision]), "--runs", "1", "--eval", str(tmp_path / "c.npz"),
                             "--predictions-out", str(pred))
        assert proc.returncode == 0, r
        saved[precision] = np.load(pred)["logits"]
    # Measured on these clips: right quantization 0.004 from float; unit instead of symmetric 0.20,
    # half the input scale 0.23, a plain float->int8 cast 0.45.
    output_scale = json.loads(proc.stdout)["outputs"][0]["quantization"][0]
    assert np.abs(saved["int8"] - saved["float32"]).max() < 8 * output_scale + 0.02
    assert np.allclose(saved["int8"], direct_logits(models["int8"], clips), atol=1e-6)
    assert np.allclose(saved["float32"], direct_logits(models["float32"], clips), atol=1e-5)


def test_normalization_flag_changes_what_the_model_sees(models, clips, tmp_path):
    np.savez(tmp_path / "c.npz", x=clips, y=np.zeros(len(clips), np.int64))
    logits = {}
    for normalization in ("unit", "symmetric"):
        pred = tmp_path / f"{normalization}.npz"
        proc, _ = run_runner("--model", str(models["float32"]), "--runs", "1", "--eval", str(tmp_path / "c.npz"),
                             "--normalization", normalization, "--predictions-out", str(pred))
        assert proc.returncode == 0
        logits[normalization] = np.load(pred)["logits"]
        assert np.allclose(logits[normalization], direct_logits(models["float32"], clips, normalization), atol=1e-5)
    assert not np.allclose(logits["unit"], logits["symmetric"])


def test_multi_input_model_times_but_refuses_eval(models, clips, tmp_path):
    proc, r = run_runner("--model", str(models["multi"]), "--runs", "3")
    assert proc.returncode == 0 and len(r["inputs"]) == 2
    np.savez(tmp_path / "c.npz", x=clips, y=np.zeros(len(clips), np.int64))
    with pytest.raises(BenchmarkError, match=r"eval_unsupported.*single-input model; this one has 2 inputs"):
        LocalDevice().run(models["multi"], eval_npz=tmp_path / "c.npz", config=FAST)


def test_not_a_model_raises_with_the_runtimes_words(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    proc, r = run_runner("--model", str(junk))
    assert proc.returncode == 1 and r["kind"] == "load"
    with pytest.raises(BenchmarkError, match="not a valid Flatbuffer") as error:
        LocalDevice().run(junk, config=FAST, name="junk", precision="int8")
    assert "junk (int8) on local" in str(error.value)


def test_missing_model_and_bad_eval_file(models, tmp_path):
    with pytest.raises(BenchmarkError, match="model_not_found.*not found on the device"):
        LocalDevice().run(tmp_path / "absent.tflite", config=FAST)
    not_npz = tmp_path / "clips.npz"
    not_npz.write_text("x,y\n1,2\n")
    with pytest.raises(BenchmarkError, match=r"eval_data.*is not an \.npz archive"):
        LocalDevice().run(models["float32"], eval_npz=not_npz, config=FAST)
    wrong_shape = tmp_path / "wrong.npz"
    np.savez(wrong_shape, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(BenchmarkError, match=r"clips have shape \[8, 8, 3\] but the model input"):
        LocalDevice().run(models["float32"], eval_npz=wrong_shape, config=FAST)


def test_bad_option_still_answers_json(models):
    proc, r = run_runner("--model", str(models["float32"]), "--threads", "0")
    assert proc.returncode == 2 and r["kind"] == "usage" and "--threads" in r["error"]


def test_timeout_is_a_benchmark_error(models):
    with pytest.raises(BenchmarkError, match="did not finish within"):
        LocalDevice().run(models["float32"], config=BenchConfig(timeout_s=0.001))


def test_benchmark_runs_all_and_names_the_failures(models, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    entries = [("tiny", "float32", models["float32"]), ("broken", "int8", junk), ("tiny", "int8", models["int8"])]
    with pytest.raises(BenchmarkError, match=r"1 of 3 models failed on local") as error:
        benchmark(entries, config=FAST, progress=False)
    assert "broken (int8) on local failed [load]" in str(error.value)
    assert [(r.name, r.precision) for r in error.value.results] == [("tiny", "float32"), ("tiny", "int8")]


def test_benchmark_returns_results_in_order_with_progress(models):
    results = benchmark([("a", "float32", models["float32"]), ("b", "int8", models["int8"])],
                        device="local", config=FAST, progress=True)
    assert [(r.name, r.precision, r.device) for r in results] == [("a", "float32", "local"), ("b", "int8", "local")]
    assert results[1].size_bytes == models["int8"].stat().st_size
    assert benchmark([], progress=True) == []
    with pytest.raises(UnknownNameError, match="Did you mean 'local'"):
        benchmark([("a", "float32", models["float32"])], device="locl")
    assert "local" in DEVICES


def tflite_runtime_python() -> str:
    """The python named by TFKIT_TFLITE_RUNTIME_PYTHON (tflite-runtime 2.14 and numpy<2: the
    runtime's last wheels, cp311 only, need numpy 1). .ci/run makes that venv; locally the test
    skips without it, but under CI (CI=true) a missing one fails the build, never skips silently."""
    python = os.environ.get("TFKIT_TFLITE_RUNTIME_PYTHON", "")
    if not python:
        why = "set TFKIT_TFLITE_RUNTIME_PYTHON to a python with tflite-runtime 2.14 and numpy<2"
    elif not Path(python).is_file():
        why = f"TFKIT_TFLITE_RUNTIME_PYTHON={python!r} is not a python"
    else:
        probe = subprocess.run([python, "-c", "import tflite_runtime"], check=False, capture_output=True, text=True)
        if probe.returncode == 0:
            return python
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        why = f"TFKIT_TFLITE_RUNTIME_PYTHON={python!r} cannot import tflite_runtime: {last}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}: .ci/run makes it (.venv-tflite-runtime)")
    pytest.skip(why)


def test_legacy_tflite_runtime_gives_the_same_accuracy(models, clips, tmp_path):
    python = tflite_runtime_python()
    labels = direct_logits(models["int8"], clips).argmax(axis=1)
    labels[::2] = (labels[::2] + 1) % CLASSES
    np.savez(tmp_path / "c.npz", x=clips, y=labels)
    device = LocalDevice(python=python)
    result = device.run(models["int8"], eval_npz=tmp_path / "c.npz", config=BenchConfig(runtime="tflite_runtime", runs=3))
    assert result.runtime.startswith("tflite_runtime ") and result.accuracy == pytest.approx(0.5)


SYSFS = Path(__file__).resolve().parents[1] / "data" / "sysfs"


def test_runner_2_records_hygiene_energy_and_affinity(models):
    """Schema 2: hygiene before/after, energy only from a real counter (else null with why), affinity."""
    proc, r = run_runner("--model", str(models["float32"]), "--runs", "5", "--cpu-affinity", "0")
    assert proc.returncode == 0, r
    assert r["schema"] == "tfkit.runner/2" and r["cpu_affinity"] == [0] and r["stream"] is None
    assert set(r["hygiene"]) == {"before", "after"}
    for snap in r["hygiene"].values():
        assert set(snap) == {"governor", "freq_khz", "max_freq_khz", "thermal_c", "battery", "unavailable"}
    if not Path("/sys/class/powercap").exists() and not Path("/sys/class/hwmon").exists():  # this container
        assert r["energy_mj_per_inference"] is None
        assert r["energy_source"] == ("unavailable: no RAPL zones under /sys/class/powercap; "
                                      "no hwmon chips under /sys/class/hwmon")
        assert any(u.startswith("cpufreq:") for u in r["hygiene"]["before"]["unavailable"])
    elif r["energy_mj_per_inference"] is None:
        assert r["energy_source"].startswith("unavailable: ")
    else:
        assert r["energy_mj_per_inference"] > 0 and not r["energy_source"].startswith("unavailable")


def test_a_counter_that_does_not_move_gives_null_with_its_source(models):
    """The laptop tree's RAPL counter is a file nobody updates: read before and after the timed
    runs it has not moved, and that is what the result says (never a number)."""
    proc, r = run_runner("--model", str(models["float32"]), "--runs", "3", "--sysfs-root", str(SYSFS / "x86_laptop"))
    assert proc.returncode == 0, r
    assert r["energy_mj_per_inference"] is None
    assert r["energy_source"].startswith(f"unavailable: rapl:package-0 {SYSFS}/x86_laptop/sys/class/powercap/"
                                         "intel-rapl:0/energy_uj did not move over the timed runs")
    assert r["hygiene"]["after"]["governor"] == {"cpu0": "powersave", "cpu1": "powersave"}
    assert r["hygiene"]["before"]["battery"] == {"percent": 64, "charging": True}


def test_bad_affinity_and_fps_without_stream(models):
    proc, r = run_runner("--model", str(models["float32"]), "--cpu-affinity", "4096")
    assert proc.returncode == 1 and r["kind"] == "cpu_affinity" and "cannot pin to CPUs [4096]" in r["error"]
    proc, r = run_runner("--model", str(models["float32"]), "--cpu-affinity", "a,b")
    assert proc.returncode == 2 and r["kind"] == "usage"
    proc, r = run_runner("--model", str(models["float32"]), "--fps", "30")
    assert proc.returncode == 2 and r["kind"] == "usage" and "--fps needs --stream" in r["error"]
