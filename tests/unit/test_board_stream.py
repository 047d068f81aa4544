"""runner.py --stream on a real tiny causal zoo model (float32 and full int8): states fed back,
int8 states requantized, each eval clip streamed from zero state and scored by its last frame's
logits, which must equal tfkit's host streaming evaluation (tfkit.convert.parity.run_stream_tflite,
what benchmarks/streaming.py scores with) on the same clips."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfkit.bench.board import board_stream
from tfkit.bench.devices import runner_script
from tfkit.models import VideoModelSpec

litert = pytest.importorskip("ai_edge_litert.interpreter")

SPEC = VideoModelSpec(num_classes=5, frames=6, size=32, alpha=0.35, stages=3, head_channels=32,
                      frame_stack=True, causal=True)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """Noise over a colour per clip that drifts over time."""
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, size=(10, SPEC.frames, 32, 32, 3))
    start, end = rng.integers(0, 256, size=(2, 10, 1, 1, 1, 3))
    t = np.linspace(0, 1, SPEC.frames)[None, :, None, None, None]
    return np.clip(noise // 3 + (start * (1 - t) + end * t) * 2 // 3, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def streams(tmp_path_factory, clips) -> dict[str, Path]:
    """The streaming form of an untrained causal TSM, float32 and int8 (calibrated on streamed
    states). Its head is set to tell these clips apart (random directions over the clips' pooled
    features, centred on their mean): an untrained head answers one class for every clip, which
    would let a runner that ignored its input pass."""
    from tests.unit.test_streaming import realistic_batchnorm
    from tfkit._compat.keras import keras
    from tfkit.convert.tflite import convert_keras
    from tfkit.data import normalize
    from tfkit.models import build, to_streaming
    from tfkit.models.streaming import stream_calibration

    K = keras()
    K.utils.set_random_seed(0)
    clip_model = build(SPEC)
    realistic_batchnorm(clip_model)
    x = normalize(clips, "symmetric")
    head = clip_model.get_layer("logits")
    features = np.asarray(K.Model(clip_model.input, head.input)(x))
    w = 20 * np.random.default_rng(1).normal(0, 1, head.get_weights()[0].shape).astype(np.float32)
    head.set_weights([w, -(features.mean(axis=0) @ w)])
    stream = to_streaming(clip_model, SPEC)
    out = tmp_path_factory.mktemp("stream")
    paths = {"float32": out / "stream_float32.tflite", "int8": out / "stream_int8.tflite"}
    paths["float32"].write_bytes(convert_keras(stream, "float32"))
    paths["int8"].write_bytes(convert_keras(stream, "int8", calibration=stream_calibration(stream, x)))
    return paths


@pytest.fixture(scope="module")
def accumulator(tmp_path_factory) -> Path:
    """A full-int8 streaming model whose state needs requantizing: acc_out = 0.9 acc_in + f(frame),
    calibrated with acc_in in [-0.2, 0.2] while acc_out spans more, so the two get different
    scales (as the zoo's count/window states can). No DIV, so tflite-runtime 2.14 runs it."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    kernel = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    dense = tf.constant(rng.normal(size=(4, 6)).astype(np.float32))
    head = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))

    def step(frame, acc_in):
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(frame, kernel, 1, "SAME")), axis=[1, 2])
        acc = 0.9 * acc_in + tf.matmul(features, dense) - 0.5
        return {"acc_out": acc, "logits": tf.matmul(acc, head)}

    module = tf.Module()
    module.step = tf.function(step, input_signature=[tf.TensorSpec((1, 16, 16, 3), tf.float32, name="frame"),
                                                     tf.TensorSpec((1, 6), tf.float32, name="acc_in")])

    def representative():
        r = np.random.default_rng(4)
        for _ in range(24):
            yield {"frame": r.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32),
                   "acc_in": r.uniform(-0.2, 0.2, (1, 6)).astype(np.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("acc") / "acc_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def host_logits(model: Path, clips: np.ndarray) -> np.ndarray:
    """tfkit's host streaming evaluation: each clip from zero state, its logits after the last frame."""
    from tfkit.convert.parity import run_stream_tflite
    from tfkit.data import normalize

    return np.stack([run_stream_tflite(model.read_bytes(), normalize(c, "symmetric"))[-1] for c in clips])


def run_runner(*args: str, python: str = sys.executable) -> tuple[int, dict]:
    proc = subprocess.run([python, str(runner_script()), *args], capture_output=True, text=True, timeout=300,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr[-2000:]
    return proc.returncode, json.loads(lines[0])


def labelled(model: Path, clips: np.ndarray, tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """An eval .npz whose labels are the host's predictions with every third one wrong on purpose."""
    logits = host_logits(model, clips)
    labels = logits.argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % SPEC.num_classes
    npz = tmp_path / "clips.npz"
    np.savez(npz, x=clips, y=labels.astype(np.int64))
    return npz, labels, logits


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_stream_accuracy_equals_host_streaming(streams, clips, precision, tmp_path):
    from tfkit.convert.parity import run_stream_tflite, state_quantization
    from tfkit.data import normalize

    model = streams[precision]
    npz, labels, ref = labelled(model, clips, tmp_path)
    # The check has teeth: the answer depends on the states carried over (the last frame alone differs).
    alone = np.stack([run_stream_tflite(model.read_bytes(), normalize(c[-1:], "symmetric"))[-1] for c in clips])
    assert (alone.argmax(axis=1) != ref.argmax(axis=1)).any()
    host_accuracy = float(np.mean(ref.argmax(axis=1) == labels))
    assert 0 < host_accuracy < 1 and len(set(ref.argmax(axis=1))) >= 3  # one class for all would prove nothing

    pred = tmp_path / "pred.npz"
    rc, r = run_runner("--model", str(model), "--stream", "--eval", str(npz), "--warmup", "2", "--threads", "2",
                       "--runs", "3", "--predictions-out", str(pred))
    assert rc == 0, r
    s = r["stream"]
    assert s["clips"] == len(clips) and s["accuracy"] == host_accuracy == r["eval"]["accuracy"]
    assert s["frames"] == len(clips) * SPEC.frames - 2 and s["warmup_frames"] == 2
    assert s["frame_input"] == "frame" and s["logits_output"] == "logits" and s["paired_by"] == "names"
    assert np.array_equal(np.load(pred)["predictions"], ref.argmax(axis=1))
    np.testing.assert_allclose(np.load(pred)["logits"], ref, atol=1e-5 if precision == "float32" else 1e-6)
    expected = sorted(row["state"] for row in state_quantization(model.read_bytes()) if not row["same"])
    assert s["requantized_states"] == expected
    lat = s["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["runs"] == s["frames"]


def test_stream_on_seeded_frames_counts_missed_deadlines(streams):
    rc, fast = run_runner("--model", str(streams["int8"]), "--stream", "--runs", "12", "--warmup", "3",
                          "--fps", "0.01")  # a 100 s deadline: nothing misses it
    assert rc == 0, fast
    s = fast["stream"]
    assert s["frames"] == 12 and s["clips"] is None and s["accuracy"] is None and fast["eval"] is None
    assert s["deadline_ms"] == 100000.0 and s["missed_deadlines"] == 0
    rc, slow = run_runner("--model", str(streams["int8"]), "--stream", "--runs", "12", "--warmup", "3",
                          "--fps", "1e7")  # 0.1 µs: every real step misses it
    assert rc == 0 and slow["stream"]["missed_deadlines"] == 12 and slow["stream"]["fps"] == 1e7
    rc, plain = run_runner("--model", str(streams["int8"]), "--stream", "--runs", "4")
    assert plain["stream"]["deadline_ms"] is None and plain["stream"]["missed_deadlines"] is None


def test_stream_refuses_what_it_cannot_pair(streams, tmp_path):
    interp = litert.Interpreter(model_path=str(streams["float32"]))
    interp.allocate_tensors()
    inputs, outputs = board_stream.signature_details(interp)
    states = [n for n in inputs if n != "frame"]
    layout = {"stream": {"frame_input": "frame", "logits_output": "logits",
                         "states": [{"name": n[:-3]} for n in states], "requantize_states": False}}
    frame, logits, pairs, how = board_stream.pair(inputs, outputs, layout)
    assert (frame, logits, how) == ("frame", "logits", "tfkit metadata")
    assert pairs == board_stream.pair(inputs, outputs, None)[2] == {n: n[:-3] + "_out" for n in states}
    layout["stream"]["states"].append({"name": "ghost"})
    with pytest.raises(board_stream.StreamError, match=r"lacks: \['ghost_in', 'ghost_out'\]"):
        board_stream.pair(inputs, outputs, layout)
    # a plain clip classifier has no state to feed back
    clip = {"clip": inputs["frame"]}
    with pytest.raises(board_stream.StreamError, match="no state inputs pair"):
        board_stream.pair(clip, {"logits": outputs["logits"]}, None)
    npz = tmp_path / "frames.npz"
    np.savez(npz, x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2, np.int64))
    rc, r = run_runner("--model", str(streams["float32"]), "--stream", "--eval", str(npz), "--runs", "2")
    assert rc == 1 and r["kind"] == "eval_data" and "stream eval needs clips (N, T, H, W, C)" in r["error"]


@pytest.fixture(scope="module")
def acc_clips() -> np.ndarray:
    rng = np.random.default_rng(6)
    noise = rng.integers(0, 256, size=(12, 5, 16, 16, 3))
    colour = rng.integers(0, 256, size=(12, 1, 1, 1, 3))
    return np.clip(noise // 2 + colour // 2, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("python_kind", ["litert", "tflite_runtime"])
def test_requantized_state_equals_host_streaming(accumulator, acc_clips, python_kind, tmp_path):
    from tfkit.convert.parity import state_quantization

    rows = state_quantization(accumulator.read_bytes())
    assert [(r["state"], r["same"]) for r in rows] == [("acc", False)]  # its scales differ: requantizing matters
    python, runtime = sys.executable, "auto"
    if python_kind == "tflite_runtime":
        from tests.unit.test_bench_runner import tflite_runtime_python

        python, runtime = tflite_runtime_python(), "tflite_runtime"
    npz, labels, ref = labelled(accumulator, acc_clips, tmp_path)
    assert len(set(ref.argmax(axis=1))) >= 2
    pred = tmp_path / "pred.npz"
    rc, r = run_runner("--model", str(accumulator), "--stream", "--eval", str(npz), "--runtime", runtime,
                       "--warmup", "1", "--predictions-out", str(pred), python=python)
    assert rc == 0, r
    assert r["stream"]["requantized_states"] == ["acc"] and r["stream"]["states"] == 1
    assert r["stream"]["accuracy"] == float(np.mean(ref.argmax(axis=1) == labels))
    assert np.array_equal(np.load(pred)["predictions"], ref.argmax(axis=1))
    if python_kind == "litert":  # the same runtime as the host's evaluation: the same numbers
        np.testing.assert_allclose(np.load(pred)["logits"], ref, atol=1e-6)
    else:  # measured: tflite-runtime 2.14's int8 kernels differ from ai-edge-litert's by up to 3 steps on
        # the same int8 inputs (13 of 360 values), so its logits may sit a few output steps away
        step = next(o for o in r["outputs"] if o["shape"] == [1, 3])["quantization"][0]  # the logits' scale
        assert np.abs(np.load(pred)["logits"] - ref).max() <= 4 * step + 1e-6
    # Fed back raw (no requantization), the int8 state drifts: the logits would not match the host's.
    interp = litert.Interpreter(model_path=str(accumulator))
    inputs, outputs = board_stream.signature_details(interp)
    interp.allocate_tensors()
    raw = []
    for clip in acc_clips:
        state = np.full((1, 6), inputs["acc_in"]["quantization"][1], np.int8)
        for frame in clip:
            x = frame[None].astype(np.float32) * np.float32(2 / 255) - np.float32(1)
            s, z = inputs["frame"]["quantization"]
            interp.set_tensor(inputs["frame"]["index"], np.clip(np.round(x / s + z), -128, 127).astype(np.int8))
            interp.set_tensor(inputs["acc_in"]["index"], state)
            interp.invoke()
            state = interp.get_tensor(outputs["acc_out"]["index"])
        s, z = outputs["logits"]["quantization"]
        raw.append((interp.get_tensor(outputs["logits"]["index"]).astype(np.float32) - z) * s)
    assert np.abs(np.concatenate(raw) - ref).max() > 0.05


def test_zoo_streams_run_on_tflite_runtime_214(streams, clips, tmp_path):
    """The zoo's sliding-window mean has no DIV (tflite-runtime 2.14 has no int8 DIV): the float32 and
    the int8 stream both run there, the float32 one matching the host and the int8 one giving the
    same predictions as the same builtin kernels in ai-edge-litert (--delegate none)."""
    from tests.unit.test_bench_runner import tflite_runtime_python

    python = tflite_runtime_python()
    npz, labels, ref = labelled(streams["float32"], clips, tmp_path)
    pred = tmp_path / "pred.npz"
    rc, r = run_runner("--model", str(streams["float32"]), "--stream", "--eval", str(npz), "--runtime",
                       "tflite_runtime", "--warmup", "1", "--predictions-out", str(pred), python=python)
    assert rc == 0 and r["runtime"] == "tflite_runtime", r
    assert r["stream"]["accuracy"] == float(np.mean(ref.argmax(axis=1) == labels))
    assert np.array_equal(np.load(pred)["predictions"], ref.argmax(axis=1))
    old, new = tmp_path / "old.npz", tmp_path / "new.npz"
    rc, r = run_runner("--model", str(streams["int8"]), "--stream", "--eval", str(npz), "--runtime", "tflite_runtime",
                       "--warmup", "1", "--predictions-out", str(old), python=python)
    assert rc == 0 and r["stream"]["clips"] == len(labels), r
    rc, r = run_runner("--model", str(streams["int8"]), "--stream", "--eval", str(npz), "--delegate", "none",
                       "--warmup", "1", "--predictions-out", str(new))
    assert rc == 0, r
    np.testing.assert_array_equal(np.load(old)["logits"], np.load(new)["logits"])


def test_tfkit_metadata_decides_the_pairing(accumulator, acc_clips, tmp_path):
    """With a tfkit stream layout embedded (as tfkit's convert step writes it) the runner pairs by it;
    a layout naming a state the model lacks is refused in words, which shows the layout is read."""
    from tfkit.convert.metadata import embed_metadata, metadata_for

    def with_layout(states: list[str], name: str) -> Path:
        spec = {"model": {}, "precision": "int8", "form": "stream",
                "input": {"name": "frame", "shape": [1, 16, 16, 3], "dtype": "int8", "quantization": [0.0078, -1]},
                "stream": {"frame_input": "frame", "logits_output": "logits",
                           "states": [{"name": s} for s in states], "requantize_states": True}}
        path = tmp_path / name
        path.write_bytes(embed_metadata(accumulator.read_bytes(), metadata_for(spec)))
        return path

    npz, _, ref = labelled(accumulator, acc_clips, tmp_path)
    pred = tmp_path / "pred.npz"
    rc, r = run_runner("--model", str(with_layout(["acc"], "good.tflite")), "--stream", "--eval", str(npz),
                       "--warmup", "1", "--predictions-out", str(pred))
    assert rc == 0, r
    assert r["stream"]["paired_by"] == "tfkit metadata" and r["metadata"]["stream"]["states"] == [{"name": "acc"}]
    np.testing.assert_allclose(np.load(pred)["logits"], ref, atol=1e-6)
    rc, r = run_runner("--model", str(with_layout(["acc", "window"], "bad.tflite")), "--stream", "--runs", "2")
    assert rc == 1 and r["kind"] == "stream_unsupported" and "['window_in', 'window_out']" in r["error"]
