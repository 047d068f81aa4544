"""Clip and streaming forms of a causal model share weights and give the same logits."""
import numpy as np
import pytest

from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build, build_streaming, run_stream, stream_states, to_streaming

SPEC = VideoModelSpec(num_classes=5, frames=6, size=32, alpha=0.35, stages=3, head_channels=32,
                      frame_stack=True, causal=True)


def realistic_batchnorm(model, seed=0):
    """Untrained BN (mean 0, var 1) makes logits vanish; give it trained-looking statistics so the
    comparisons below are about numbers of normal size."""
    from tfkit._compat.keras import keras

    rng = np.random.default_rng(seed)
    for l in model.layers:
        if isinstance(l, keras().layers.BatchNormalization):
            c = l.gamma.shape[0]
            l.set_weights([rng.uniform(0.8, 1.6, c), rng.normal(0, 0.2, c), rng.normal(0, 0.1, c),
                           rng.uniform(0.2, 0.6, c)])


@pytest.fixture(scope="module")
def clip_and_stream():
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    clip = build(SPEC)
    realistic_batchnorm(clip)
    return clip, to_streaming(clip, SPEC)


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).uniform(-1, 1, size=SPEC.input_shape).astype(np.float32)


def test_streaming_equals_clip(clip_and_stream, frames):
    clip, stream = clip_and_stream
    ref = np.asarray(clip(frames[None], training=False))[0]
    got = run_stream(stream, frames)
    assert np.abs(ref).max() > 0.1  # a real comparison, not of vanishing numbers
    assert np.abs(got[-1] - ref).max() <= 1e-4
    # After k frames the stream equals the clip model run on those k frames.
    k = 3
    short = build(VideoModelSpec(**{**SPEC.to_dict(), "frames": k}))
    short.set_weights(clip.get_weights())
    ref_k = np.asarray(short(frames[None, :k], training=False))[0]
    assert np.abs(got[k - 1] - ref_k).max() <= 1e-4


def test_causal_clip_ignores_the_future(clip_and_stream, frames):
    """The first half of the per-frame features never sees later frames: changing the last frame
    changes the stream's final logits only, not the earlier ones."""
    _, stream = clip_and_stream
    changed = frames.copy()
    changed[-1] = -changed[-1]
    a, b = run_stream(stream, frames), run_stream(stream, changed)
    np.testing.assert_allclose(a[:-1], b[:-1], atol=1e-6)
    assert np.abs(a[-1] - b[-1]).max() > 1e-4


def test_state_layout(clip_and_stream):
    _, stream = clip_and_stream
    states = stream_states(stream)
    kinds = [s.kind for s in states]
    assert kinds.count("window") == 1 and kinds.count("count") == 1 and kinds.count("shift") >= 3
    frame_stack = next(s for s in states if s.name == "frame_stack")
    assert frame_stack.shape == (32, 32, 3)  # the previous raw frame
    assert stream.output_names == ["logits", *[s.output_name for s in states]]


def test_non_causal_cannot_stream():
    with pytest.raises(UsageError, match="causal"):
        build_streaming(VideoModelSpec(num_classes=3, frames=4, size=32, stages=2))


def test_tflite_streaming_equals_keras_clip(clip_and_stream, frames):
    from tfkit.convert.parity import run_stream_tflite
    from tfkit.convert.tflite import convert_keras

    clip, stream = clip_and_stream
    flatbuffer = convert_keras(stream, "float32")
    got = run_stream_tflite(flatbuffer, frames)
    ref = np.asarray(clip(frames[None], training=False))[0]
    assert np.abs(got[-1] - ref).max() <= 1e-4

    # Wrong inputs are named, with the shape the model expects; the runner still works afterwards.
    from tfkit.convert.parity import StreamRunner
    from tfkit.errors import UsageError

    runner = StreamRunner(flatbuffer)
    state = next(name for name in runner.states if name.endswith("_window_in"))
    shape = runner.states[state].shape
    with pytest.raises(UsageError, match=f"{state}.*expects"):
        runner.reset({state: np.zeros((1, *shape[1:-1], shape[-1] + 1), np.float32)})
    with pytest.raises(UsageError, match="unknown state tensor 'nope_in'"):
        runner.reset({"nope_in": np.zeros(1)})
    with pytest.raises(UsageError, match="'frame' has shape"):
        runner.step(frames[0][:, :-1])
    np.testing.assert_allclose(np.stack([runner.step(f) for f in frames]), got, atol=1e-6)


def test_int8_streaming_with_streamed_calibration(clip_and_stream, frames):
    """Full-int8 streaming model calibrated on streamed states: int8 state I/O, every state's
    quantization reported, and the requantizing runner stays close to the float clip model."""
    from tfkit.convert.parity import run_stream_tflite, state_quantization
    from tfkit.convert.tflite import convert_keras
    from tfkit.models.streaming import stream_calibration

    clip, stream = clip_and_stream
    rng = np.random.default_rng(2)
    calib = [frames, *rng.uniform(-1, 1, size=(5, *SPEC.input_shape)).astype(np.float32)]
    flatbuffer = convert_keras(stream, "int8", calibration=stream_calibration(stream, calib))
    rows = state_quantization(flatbuffer)
    assert {r["state"] for r in rows} == {s.name for s in stream_states(stream)}
    assert all(r["dtype"] == "int8" for r in rows)
    # The frame count is unary (0/1 slots): its int8 range holds 1, so a full window reads as full.
    scale, zero = next(r["input"] for r in rows if r["state"].endswith("count"))
    assert scale * (127 - zero) >= 1 - scale
    # No DIV or MINIMUM: XNNPACK takes the whole int8 stream graph in one piece, the Edge TPU's
    # static rules map all of it, and its ops are the int8 kernels every runtime has.
    from tfkit.convert.parity import TFLiteModel
    from tfkit.delegates.check import check_bytes

    ops = TFLiteModel(flatbuffer).op_counts()
    assert "DIV" not in ops and "MINIMUM" not in ops, ops
    assert TFLiteModel(flatbuffer).xnnpack_partitions() == 1
    assert {c.delegate: c.verdict for c in check_bytes(flatbuffer, ["xnnpack", "edgetpu"])} == \
        {"xnnpack": "full", "edgetpu": "full"}
    got = run_stream_tflite(flatbuffer, frames)
    ref = np.asarray(clip(frames[None], training=False))[0]
    assert np.abs(got[-1] - ref).max() <= 0.1 * np.abs(ref).max()


def test_long_streams_keep_bounded_state_and_a_sliding_window(clip_and_stream):
    """After many frames the unary count saturates at T ones and the prediction is the mean over the
    last T frames' features: a constant input gives a constant prediction, however long the stream."""
    _, stream = clip_and_stream
    frame = np.random.default_rng(3).uniform(-1, 1, size=(1, *SPEC.input_shape[1:])).astype(np.float32)
    logits = run_stream(stream, np.repeat(frame, 4 * SPEC.frames, axis=0))
    np.testing.assert_allclose(logits[-1], logits[-SPEC.frames], atol=1e-5)


def test_int16x8_converts_the_stream_form(clip_and_stream, frames):
    """int16x8 has no DIV or MINIMUM kernel at int16, which used to stop the stream form; without
    them it converts and its graph keeps int16 activations (the converter's own inference type)."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.models.streaming import stream_calibration

    _, stream = clip_and_stream
    flatbuffer = convert_keras(stream, "int16x8", calibration=stream_calibration(stream, [frames, frames[::-1]]))
    model = TFLiteModel(flatbuffer)
    assert "DIV" not in model.op_counts() and "MINIMUM" not in model.op_counts()
    assert any(t["dtype"].__name__ == "int16" for t in model.interpreter.get_tensor_details())
