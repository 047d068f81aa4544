"""tfkit.bench.timing: models timed on a Device (the real runner on this host); streaming models
in a fresh process per model, the same seeded frames, both timing modes; and the flatbuffer MAC
count that turns its times into GMAC/s."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from tfkit.bench.devices.base import BenchConfig
from tfkit.bench.devices.kinds import NOT_IMPLEMENTED
from tfkit.bench.timing import (
    TimingConfig,
    _board_stream,
    _pairs,
    device_record,
    gmacs_per_s,
    real_looking_frames,
    time_flatbuffers,
    time_stream,
    time_tflite,
    timing_device,
)
from tfkit.errors import BenchmarkError, UsageError

SIZE, CH, STATE = 8, 4, 6
FAST = TimingConfig(frames=5, warmup=2, timeout_s=120)


def _convert(fn, module) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], module).convert()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A streaming model the way tfkit names one (frame, state_in -> logits, state_out: one 3x3
    conv 3->4 channels and one 4->6 dense), a MoViNet-named one (image + a state of the same name
    in and out), and a plain one-input model."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(3, 3, 3, CH)).astype(np.float32))
    dense = tf.constant(rng.normal(size=(CH, STATE)).astype(np.float32))
    frame_spec = tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)
    state_spec = tf.TensorSpec((1, STATE), tf.float32)

    def core(frame, state):
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(frame, kernel, 1, "SAME")), axis=[1, 2])
        new_state = 0.5 * state + tf.matmul(features, dense)
        return new_state, tf.reduce_sum(new_state, axis=1, keepdims=True)

    module = tf.Module()
    module.ours = tf.function(lambda frame, state_in: dict(zip(("state_out", "logits"), core(frame, state_in))),
                              input_signature=[frame_spec, state_spec])
    module.garden = tf.function(lambda image, state_a: dict(zip(("state_a", "logits"), core(image, state_a))),
                                input_signature=[frame_spec, state_spec])
    module.plain = tf.function(lambda x: {"logits": core(x, tf.zeros((1, STATE)))[1]}, input_signature=[frame_spec])
    folder = tmp_path_factory.mktemp("timing")
    paths = {}
    for name in ("ours", "garden", "plain"):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(_convert(getattr(module, name), module))
    return paths


def test_each_model_is_timed_in_a_fresh_process_in_both_modes(tiny):
    first, second = time_stream(tiny["ours"], FAST), time_stream(tiny["ours"], FAST)
    for t in (first, second):
        assert t.pid != os.getpid()
        assert t.frame_input == "frame" and t.states == 1 and t.state_values == STATE
        for median, (p10, p90) in ((t.step_ms, t.step_p10_p90), (t.invoke_ms, t.invoke_p10_p90)):
            assert 0 < p10 <= median <= p90
        assert t.step_cpu_ms is not None and t.invoke_cpu_ms is not None  # one thread: CPU time is reported
        assert (t.frames, t.warmup, t.threads) == (5, 2, 1)
    assert first.pid != second.pid


def test_every_model_sees_the_same_seeded_frames(tiny):
    ours = time_stream(tiny["ours"], FAST)
    garden = time_stream(tiny["garden"], TimingConfig(frames=5, warmup=2, input_range=(-1.0, 1.0)))
    other_seed = time_stream(tiny["ours"], TimingConfig(frames=5, warmup=2, seed=1))
    expected = hashlib.sha256(real_looking_frames(7, (1, SIZE, SIZE, 3), 0).tobytes()).hexdigest()
    assert ours.frames_sha256 == garden.frames_sha256 == expected  # the range maps them, the pictures agree
    assert other_seed.frames_sha256 != expected
    assert garden.frame_input == "image" and garden.states == 1


def test_frames_look_like_video_not_noise_or_zeros():
    frames = real_looking_frames(6, (SIZE, SIZE, 3), 3)
    assert frames.dtype == np.float32 and frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0.1
    step = np.abs(np.diff(frames, axis=0)).mean()
    assert step < 0.5 * np.abs(frames[0] - np.random.default_rng(9).random(frames[0].shape)).mean()


def test_plain_model_and_bytes_input(tiny):
    t = time_stream(tiny["plain"].read_bytes(), FAST)
    assert t.states == 0 and t.frame_input == "x" and t.invoke_ms > 0


def test_unknown_frame_input_and_broken_file_are_benchmark_errors(tiny, tmp_path):
    with pytest.raises(BenchmarkError, match="no input named 'video'"):
        time_stream(tiny["ours"], TimingConfig(frames=2, warmup=0, frame_input="video"))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(BenchmarkError, match="bad.tflite failed"):
        time_stream(bad, FAST)


def test_state_pairing_by_name():
    names = dict.fromkeys(["frame", "a_in", "b_in"]), dict.fromkeys(["logits", "a_out", "b_out"])
    assert _pairs(*names, None) == ("frame", {"a_in": "a_out", "b_in": "b_out"})
    garden = dict.fromkeys(["image", "s1", "s2"]), dict.fromkeys(["logits", "s1", "s2"])
    assert _pairs(*garden, None) == ("image", {"s1": "s1", "s2": "s2"})
    with pytest.raises(ValueError, match="frame_input"):
        _pairs(dict.fromkeys(["u", "v"]), dict.fromkeys(["logits"]), None)


def test_int8_states_are_requantized_between_different_scales():
    src = {"dtype": np.int8, "quantization": (0.1, -3)}
    dst = {"dtype": np.int8, "quantization": (0.2, 5)}
    values = np.array([-3, 7, 17, 120], np.int8)  # 0.0, 1.0, 2.0, 12.3
    carry, changes = _board_stream().carrier(src, dst)
    carried = carry(values)
    assert changes
    np.testing.assert_allclose((carried.astype(np.float32) - 5) * 0.2, [0.0, 1.0, 2.0, 12.2], atol=0.11)
    assert _board_stream().carrier(src, dict(src))[0](values) is values


def test_macs_off_the_flatbuffer_and_gmacs(tiny):
    from tfkit.optimize.cost import tflite_macs, tflite_params

    data = tiny["ours"].read_bytes()
    conv, dense = SIZE * SIZE * CH * 3 * 3 * 3, CH * STATE
    assert tflite_macs(data) == conv + dense
    assert tflite_params(data) >= 3 * 3 * 3 * CH + CH * STATE
    assert gmacs_per_s(50_000_000, 5.0) == pytest.approx(10.0)


@pytest.fixture(scope="module")
def small_and_big():
    """Two real flatbuffers: one 3x3 conv over 8x8x3 (~1e4 MACs) and four 3x3 convs of 32 channels
    over 48x48 (~8e7 MACs), so the bigger one is slower on any CPU by far more than timing noise."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    small_k = tf.constant(rng.normal(size=(3, 3, 3, CH)).astype(np.float32))
    big_k = [tf.constant(rng.normal(size=(3, 3, 32, 32)).astype(np.float32) * 0.1) for _ in range(4)]

    def big(x):
        for k in big_k:
            x = tf.nn.relu(tf.nn.conv2d(x, k, 1, "SAME"))
        return {"y": x}

    module = tf.Module()
    module.small = tf.function(lambda x: {"y": tf.nn.conv2d(x, small_k, 1, "SAME")},
                               input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    module.big = tf.function(big, input_signature=[tf.TensorSpec((1, 48, 48, 32), tf.float32)])
    return {name: _convert(getattr(module, name), module) for name in ("small", "big")}


class _Recording:
    """A device that only counts what it was asked to run (for checks that nothing ran)."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def run(self, model_path, **kw):
        self.calls.append(model_path)
        raise AssertionError("nothing should be timed")


def test_time_flatbuffers_on_the_local_device_gives_the_bigger_model_the_larger_p50(small_and_big, tmp_path):
    config = BenchConfig(threads=1, warmup=2, runs=10)
    p50 = time_flatbuffers(small_and_big, "local", config, rounds=2)
    assert set(p50) == {"small", "big"}
    assert 0 < p50["small"] < p50["big"], p50
    path = tmp_path / "big.tflite"
    path.write_bytes(small_and_big["big"])
    # one model by path or by bytes: the same runner, so the same order against the small one
    assert time_tflite(path, timing_device(None), config) > p50["small"]
    assert time_tflite(small_and_big["small"], config=config) < p50["big"]


def test_bad_rounds_and_devices_fail_before_anything_is_timed(small_and_big, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user devices.yaml
    device = _Recording()
    with pytest.raises(UsageError, match="rounds must be an integer >= 1, got 0"):
        time_flatbuffers(small_and_big, device, rounds=0)
    with pytest.raises(UsageError, match="Bad device address 'bogus:x'"):
        time_flatbuffers(small_and_big, "bogus:x")
    for kind in NOT_IMPLEMENTED:  # known to the address grammar, not runnable in this version (adb, until it lands)
        with pytest.raises(UsageError, match=f"{kind}: "):
            time_tflite(small_and_big["small"], kind)
    assert device.calls == []
    with pytest.raises(BenchmarkError):  # a file the runtime cannot load: the runner's words, not a crash
        time_tflite(b"not a model", "local", BenchConfig(threads=1, warmup=0, runs=1))


def test_device_record_names_the_address_and_the_devices_yaml_entry(monkeypatch, tmp_path):
    (tmp_path / "tfkit").mkdir()
    (tmp_path / "tfkit" / "devices.yaml").write_text("devices:\n  here:\n    address: local\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert device_record("local") == {"address": "local", "name": None}
    assert device_record("here") == {"address": "local", "name": "here"}
    assert timing_device("here").name == "local"


def test_every_model_is_timed_each_round_with_rest_between_runner_processes(small_and_big):
    """3 rounds of 2 models on the scripted device (a fixed cost per op and MAC): 6 runner calls,
    each model's own figure back under its own key, and cooldown_s slept between processes."""
    import time

    from tests.scripted_timing import ScriptedDevice, ops_and_macs

    device = ScriptedDevice()
    start = time.perf_counter()
    p50 = time_flatbuffers(small_and_big, device, BenchConfig(threads=1, runs=1, cooldown_s=0.1), rounds=3)
    assert time.perf_counter() - start >= 5 * 0.1  # no rest before the first process
    assert len(device.calls) == 6 and {c[2:] for c in device.calls} == {ops_and_macs(fb) for fb in small_and_big.values()}
    assert p50 == {name: device.latency(*ops_and_macs(fb)) for name, fb in small_and_big.items()}


def test_plain_integer_states_start_at_zero():
    """An unquantized integer state (MoViNet's frame counter: int32, scale 0) starts at 0, not at the
    garbage a division by its zero scale would give (which made an int8 DIV divide by zero)."""
    quantize = _board_stream().quantize
    counter = quantize(np.zeros((1, 1), np.float32), {"dtype": np.int32, "quantization": (0.0, 0)})
    assert counter.dtype == np.int32 and counter.tolist() == [[0]]
    state = quantize(np.zeros(3, np.float32), {"dtype": np.int8, "quantization": (0.5, -7)})
    assert state.tolist() == [-7, -7, -7]  # an int8 state's float 0.0 is its zero point
