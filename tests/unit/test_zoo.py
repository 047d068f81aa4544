"""The zoo beyond the default: every backbone x temporal module, compound scaling, clip == stream,
early exit, and conversion of the new forms to builtin-only, XNNPACK-whole int8."""
import numpy as np
import pytest

from tfkit.convert.sweep import calibrate_batchnorm
from tfkit.errors import UsageError
from tfkit.models import MODELS, VideoModelSpec, build, run_stream, to_streaming
from tfkit.models.spec import TEMPORAL_MODULES

BASE = VideoModelSpec(num_classes=5, frames=4, size=32, alpha=0.35, stages=4, head_channels=32, causal=True)
COMBOS = [(f, t) for f in MODELS.names() for t in TEMPORAL_MODULES]


def scramble(model, seed=0):
    """Random temporal kernels and BatchNorm statistics set from one batch (a fresh model has
    identity temporal convs and unit BN statistics, so its signal fades with depth and its logits
    barely depend on the frames, which would let a broken stream/clip equivalence pass)."""
    rs = np.random.RandomState(seed)
    for layer in model.layers:
        if layer.name.endswith("_tconv"):
            layer.set_weights([0.7 * rs.randn(*w.shape) for w in layer.get_weights()])
    return calibrate_batchnorm(model, rs.rand(4, *model.input_shape[1:]))


def test_zoo_lists_three_backbones():
    assert {"mobilenet_v2", "mobilenet_v3", "efficientnet_lite"} <= set(MODELS.names())
    assert "hard-swish" in MODELS.get("mobilenet_v3").__doc__


@pytest.mark.parametrize("family,temporal", COMBOS)
def test_stream_equals_clip_for_every_zoo_model(family, temporal):
    spec = VideoModelSpec(**{**BASE.to_dict(), "family": family, "temporal": temporal})
    clip_model = scramble(build(spec))
    clip = np.random.RandomState(1).rand(1, 4, 32, 32, 3).astype(np.float32)
    ref = np.asarray(clip_model(clip, training=False))[0]
    streamed = run_stream(to_streaming(clip_model, spec), clip[0])
    assert np.abs(streamed[-1] - ref).max() <= 1e-4
    # ...and the check has teeth: order matters to these weights, and the stream's earlier outputs differ.
    reversed_ref = np.asarray(clip_model(clip[:, ::-1].copy(), training=False))[0]
    assert np.abs(reversed_ref - ref).max() > 1e-3
    assert np.abs(streamed[-2] - ref).max() > 1e-3


def test_2plus1d_is_causal_and_has_no_conv3d():
    from tfkit._compat.keras import keras

    spec = VideoModelSpec(**{**BASE.to_dict(), "temporal": "2plus1d"})
    model = scramble(build(spec))
    assert not any(isinstance(l, (keras().layers.Conv3D, keras().layers.Lambda)) for l in model.layers)
    assert any(l.name.endswith("_tconv") for l in model.layers)
    rs = np.random.RandomState(2)
    a = rs.rand(1, 4, 32, 32, 3).astype(np.float32)
    b = a.copy()
    b[:, 3] = rs.rand(32, 32, 3)  # change only the last frame
    # A causal model's features at frames 0..2 cannot see frame 3: compare the per-frame streaming outputs.
    stream = to_streaming(model, spec)
    sa, sb = run_stream(stream, a[0]), run_stream(stream, b[0])
    np.testing.assert_allclose(sa[:3], sb[:3], atol=1e-6)
    assert np.abs(sa[3] - sb[3]).max() > 1e-4


def test_compound_coefficient_scales_width_depth_resolution():
    base = VideoModelSpec(family="efficientnet_lite", num_classes=5, frames=2, size=64, stages=4)
    scaled = VideoModelSpec(**{**base.to_dict(), "compound": 2})
    assert scaled.resolution == 88 and scaled.input_shape == (2, 88, 88, 3)
    assert scaled.width_multiplier == pytest.approx(base.width_multiplier * 1.21)
    assert build(scaled).count_params() > build(base).count_params()
    blocks = lambda m: {l.name.split("_")[0] for l in m.layers if l.name.endswith("_dw")}
    assert len(blocks(build(scaled))) > len(blocks(build(base)))
    with pytest.raises(UsageError, match="compound"):
        VideoModelSpec(compound=-1)
    with pytest.raises(UsageError, match="temporal"):
        VideoModelSpec(temporal="conv3d")


def test_early_exit_head_shares_weights_and_answers_confident_clips():
    from tfkit.models.early_exit import early_exit_predict, exit_model

    spec = VideoModelSpec(**{**BASE.to_dict(), "family": "mobilenet_v3", "early_exit": 2})
    model = scramble(build(spec))
    assert list(model.output_names) == ["logits", "exit_logits"]
    cheap = exit_model(model, spec)
    assert cheap.count_params() < model.count_params() / 2
    clips = np.random.RandomState(3).rand(6, 4, 32, 32, 3).astype(np.float32)
    full_out = model(clips, training=False)
    np.testing.assert_allclose(np.asarray(cheap(clips, training=False)), np.asarray(full_out[1]), atol=1e-5)
    full_fn = lambda x: np.asarray(model(x, training=False)[0])
    exit_fn = lambda x: np.asarray(cheap(x, training=False))
    preds, exited = early_exit_predict(exit_fn, full_fn, clips, threshold=1.0)
    assert not exited.any() and (preds == np.argmax(np.asarray(full_out[0]), -1)).all()
    preds, exited = early_exit_predict(exit_fn, full_fn, clips, threshold=1e-9)
    assert exited.all() and (preds == np.argmax(np.asarray(full_out[1]), -1)).all()
    with pytest.raises(UsageError, match="threshold"):
        early_exit_predict(exit_fn, full_fn, clips, threshold=0)
    with pytest.raises(UsageError, match="early exit"):
        exit_model(model, BASE)


def test_new_forms_convert_to_builtin_int8_in_few_xnnpack_partitions():
    """MobileNetV3 (hard-swish, SE) with the (2+1)D temporal conv, full int8: the hardest
    combination for XNNPACK (a textbook hard-swish converts to HARD_SWISH, which XNNPACK refuses in
    int8). Both forms are one partition: the stream form's sliding-window mean has no DIV or
    MINIMUM (the frame count is a unary state), which XNNPACK used to leave outside."""
    from tfkit.convert.sweep import summarize, sweep_model

    spec = VideoModelSpec(**{**BASE.to_dict(), "family": "mobilenet_v3", "temporal": "2plus1d"})
    clips = np.random.RandomState(4).rand(3, 4, 32, 32, 3).astype(np.float32)
    # Trained-like activation ranges matter: with a fresh model's tiny activations, XNNPACK refuses
    # int8 ADDs whose input/output scale ratio falls outside its range, and the graph splits.
    model = scramble(build(spec))
    rows = sweep_model(spec, clips, precisions=["float32", "int8"], forms=["clip", "stream"], latency_runs=5,
                       model=model)
    assert [r["error"] for r in rows] == [None] * 4
    clip8, stream8 = rows[1], rows[3]
    for r in (clip8, stream8):
        assert r["builtin_only"] and r["float_activation_tensors"] == 0 and "HARD_SWISH" not in r["ops"]
    assert clip8["xnnpack_partitions"] == 1 and stream8["xnnpack_partitions"] == 1
    assert "DIV" not in stream8["ops"] and "MINIMUM" not in stream8["ops"]
    assert summarize(rows)["max_int8_xnnpack_partitions"] == 1
