"""tfkit.gen: footage cutting, baselines, PSNR, model graphs, TFLite conversion, a short training."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import DataError, UsageError
from tfkit.gen.evaluate import TFLiteRunner, bicubic_upsample, bilinear_upsample, blend_baseline, psnr
from tfkit.gen.footage import (
    area_downscale,
    load_footage,
    sample_sr_pairs,
    sample_triplets,
    sr_pairs,
    triplets,
)

# Builtin ops the generation graphs may use; anything else (Flex/custom, HARD_SWISH...) is a regression.
ALLOWED_OPS = {"ADD", "SUB", "MUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
               "RESIZE_BILINEAR", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"}


def _texture(n=5, h=40, w=48, shift=1, seed=0):
    """A smooth random texture translating `shift` px right per frame: real-looking motion."""
    rng = np.random.default_rng(seed)
    big = rng.random((h + 8, w + n * shift + 8, 3)).astype(np.float32)
    k = np.ones(5, np.float32) / 5
    big = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), 0, big)
    big = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), 1, big)
    return np.stack([big[4:4 + h, 4 + t * shift:4 + t * shift + w] for t in range(n)])


# --- PSNR and baselines (numpy only) -------------------------------------------------------------

def test_psnr_matches_hand_computation():
    target = np.array([0.0, 0.5, 1.0, 0.25]).reshape(1, 1, 4, 1)
    pred = np.array([0.1, 0.5, 0.8, 0.25]).reshape(1, 1, 4, 1)
    mse = (0.1 ** 2 + 0.2 ** 2) / 4  # 0.0125
    assert psnr(pred, target) == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)  # 19.0309
    assert psnr(np.zeros((1, 2, 2, 3)), np.full((1, 2, 2, 3), 0.1)) == pytest.approx(20.0)
    assert psnr(target, target) == float("inf")
    # predictions are clipped to [0, 1] like an image: 1.3 scores as 1.0
    assert psnr(np.array([1.3, 0.0]), np.array([1.0, 0.1])) == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-3)
    with pytest.raises(UsageError, match="equal shapes"):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))


def test_blend_and_area_downscale_by_hand():
    a, b = np.full((1, 2, 2, 3), 0.2), np.full((1, 2, 2, 3), 0.6)
    np.testing.assert_allclose(blend_baseline(a, b), 0.4, atol=1e-7)
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(area_downscale(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert area_downscale(np.zeros((2, 9, 10, 3)), 4).shape == (2, 2, 2, 3)  # cropped to multiples


def test_bicubic_keeps_constants_and_ramps_and_matches_tensorflow():
    np.testing.assert_allclose(bicubic_upsample(np.full((1, 3, 5, 3), 0.7), 4), 0.7, atol=1e-6)
    # Keys cubic reproduces linear ramps exactly away from the borders
    ramp = np.tile(np.arange(8.0)[None, :, None, None], (1, 1, 8, 1))
    up = bicubic_upsample(ramp, 2)[0, 4:12, 0, 0]
    np.testing.assert_allclose(up, (np.arange(4, 12) + 0.5) / 2 - 0.5, atol=1e-5)

    from tfkit._compat.keras import tf

    x = np.random.default_rng(0).random((2, 6, 7, 3)).astype(np.float32)
    for scale in (2, 4):
        ref = tf().image.resize(x, (6 * scale, 7 * scale), method="bicubic").numpy()
        np.testing.assert_allclose(bicubic_upsample(x, scale), ref, atol=1e-5)


# --- footage ------------------------------------------------------------------------------------

def test_triplets_and_sr_pairs():
    frames = _texture(n=6)
    a, b, mid = triplets(frames)
    assert a.shape == b.shape == mid.shape == (4, 40, 48, 3)
    np.testing.assert_array_equal(mid[0], frames[1])
    np.testing.assert_array_equal(b[0], frames[2])
    lr, hr = sr_pairs(frames, 4)
    assert lr.shape == (6, 10, 12, 3) and hr.shape == frames.shape
    rng = np.random.default_rng(0)
    pa, pb, pm = sample_triplets(frames, 3, 16, rng)
    assert pa.shape == pb.shape == pm.shape == (3, 16, 16, 3)
    plr, phr = sample_sr_pairs(frames, 3, 16, 2, rng)
    assert plr.shape == (3, 8, 8, 3) and phr.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(area_downscale(phr, 2), plr, atol=1e-6)


def test_bad_inputs_give_clear_errors(tmp_path):
    from tfkit.data import write_video
    from tfkit.gen.models import build_interpolator, build_super_resolution

    with pytest.raises(UsageError, match="divisible by the scale 4"):
        sr_pairs(np.zeros((2, 30, 32, 3)), 4)
    with pytest.raises(DataError, match="N>=3"):
        triplets(np.zeros((2, 8, 8, 3)))
    path = write_video(tmp_path / "two.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=10)
    with pytest.raises(DataError, match="hold 2 frame"):
        load_footage(path)
    with pytest.raises(UsageError, match="divisible by 8"):
        build_interpolator(size=(36, 40))
    with pytest.raises(UsageError, match="scale must be"):
        build_super_resolution(5)


def test_load_footage_cuts_a_time_range(tmp_path):
    from tfkit.data import write_video

    frames = (np.linspace(0, 255, 6)[:, None, None, None] * np.ones((6, 32, 32, 3))).astype(np.uint8)
    path = write_video(tmp_path / "ramp.mp4", frames, fps=10)
    clip = load_footage(path, start=2, stop=5, downscale=2)
    assert clip.frames.shape == (3, 16, 16, 3) and clip.frames.dtype == np.float32
    assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0
    assert clip.describe()["frames"] == [2, 5]
    assert clip.frames[1].mean() > clip.frames[0].mean()  # later frames are brighter


# --- models and conversion ---------------------------------------------------------------------

def test_untrained_models_start_at_their_baselines_and_have_no_lambda():
    from tfkit._compat.keras import tf
    from tfkit.gen.models import GEN_MODELS, has_lambda

    assert GEN_MODELS.names() == ["interp", "sr_x2", "sr_x4"]
    for scale in (2, 4):
        sr = GEN_MODELS.get(f"sr_x{scale}")(size=(4, 6), channels=8)
        assert not has_lambda(sr)
        lr = _texture(n=1, h=4, w=6)
        up = sr(lr).numpy()
        assert up.shape == (1, 4 * scale, 6 * scale, 3)
        np.testing.assert_allclose(up, tf().image.resize(lr, (4 * scale, 6 * scale)).numpy(), atol=0.03)
        np.testing.assert_allclose(bilinear_upsample(lr, scale), tf().image.resize(lr, (4 * scale, 6 * scale)),
                                   atol=1e-5)


def test_untrained_interpolator_follows_motion_the_blend_smears():
    """Block matching is built in: on a texture moving 1 px per frame the untrained model finds the
    motion path and beats the blend by far; with no motion it returns the frame itself."""
    from tfkit.gen.models import GEN_MODELS, has_lambda

    interp = GEN_MODELS.get("interp")(size=(32, 48), channels=8)
    assert not has_lambda(interp)
    frames = _texture(n=3, h=32, w=48, shift=1, seed=3)
    inner = (slice(None), slice(6, -6), slice(6, -6))  # away from the zero-padded borders
    out = interp([frames[:1], frames[2:]]).numpy()
    assert out.shape == (1, 32, 48, 3)
    blend = blend_baseline(frames[:1], frames[2:])
    assert psnr(out[inner], frames[1:2][inner]) > psnr(blend[inner], frames[1:2][inner]) + 6.0
    still = interp([frames[:1], frames[:1]]).numpy()
    assert psnr(still[inner], frames[:1][inner]) > 40.0  # the zero-cost path wins (a slight blur remains)


def test_interpolator_rejects_bad_kernels():
    from tfkit.gen.models import build_interpolator

    with pytest.raises(UsageError, match="odd number"):
        build_interpolator(size=(16, 16), kernel=4)


@pytest.mark.parametrize("name", ["interp", "sr_x2"])
def test_converts_to_builtin_float32_and_full_int8(name):
    from tfkit._compat.keras import keras
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.tflite import convert_keras
    from tfkit.gen.models import GEN_MODELS, INTERP_INPUTS

    keras().utils.set_random_seed(0)  # the layers' initial weights
    rng = np.random.default_rng(0)
    frames = _texture(n=3, h=16, w=16)
    if name == "interp":
        model = GEN_MODELS.get(name)(size=(16, 16), channels=8)
        inputs = {INTERP_INPUTS[0]: frames[:1], INTERP_INPUTS[1]: frames[2:]}
        calib = [{k: np.clip(v + rng.normal(0, 0.05, v.shape), 0, 1) for k, v in inputs.items()} for _ in range(4)]
        expected = blend_baseline(frames[:1], frames[2:])
    else:
        model = GEN_MODELS.get(name)(size=(8, 8), channels=8)
        inputs = {"low_res": area_downscale(frames[:1], 2)}
        calib = [np.clip(inputs["low_res"] + rng.normal(0, 0.05, (1, 8, 8, 3)), 0, 1) for _ in range(4)]
        expected = np.asarray(model(inputs["low_res"]))
    # weights moved a few percent, as after training, so int8 has a real correction to carry
    last = model.get_layer("kernel_logits" if name == "interp" else "subpixel")
    last.set_weights([w + rng.normal(0, 0.01, w.shape).astype(np.float32) for w in last.get_weights()])
    keras_out = np.asarray(model([inputs[k] for k in INTERP_INPUTS] if name == "interp" else inputs["low_res"]))
    assert 0.005 < np.abs(keras_out - expected).mean() < 0.2
    for precision in ("float32", "int8"):
        fb = convert_keras(model, precision, calibration=calib)
        graph = TFLiteModel(fb)
        assert set(graph.op_counts()) <= ALLOWED_OPS, graph.op_counts()
        assert graph.xnnpack_partitions() <= (1 if precision == "float32" else 2)
        runner = TFLiteRunner(fb)
        if precision == "int8":
            assert all(np.dtype(d["dtype"]) == np.int8 for d in runner.inputs.values())
            assert all(np.dtype(d["dtype"]) == np.int8 for d in runner.outputs.values())
        got = runner(**inputs)
        assert got.shape == keras_out.shape
        # float32 matches Keras; int8 stays within a few 8-bit steps of it
        assert np.abs(got - keras_out).max() < (1e-4 if precision == "float32" else 0.05)


@pytest.mark.parametrize("name", ["interp", "sr_x2"])
def test_generation_models_are_qat_able_to_full_int8(name):
    """TFMOT wraps every layer (fixed-kernel convs, softmax, depth-to-space, bilinear upsampling);
    the QAT model converts to int8 in and out with no float activation left."""
    from tfkit.convert.qat import convert_qat, inspect_int8, quantize_aware, quantized_layer_coverage
    from tfkit.gen.models import GEN_MODELS, INTERP_INPUTS

    frames = _texture(n=3, h=16, w=16, seed=5)
    if name == "interp":
        model = GEN_MODELS.get(name)(size=(16, 16), channels=8)
        batch = [frames[:1], frames[2:]]
        calib = [dict(zip(INTERP_INPUTS, batch))]
    else:
        model = GEN_MODELS.get(name)(size=(8, 8), channels=8)
        batch = area_downscale(frames[:1], 2)
        calib = [batch]
    qat = quantize_aware(model)
    coverage = quantized_layer_coverage(qat)
    assert all(entry.endswith("(InputLayer)") for entry in coverage["plain"]), coverage["plain"]
    for _ in range(2):  # let the fake-quant ranges see data
        qat(batch, training=True)
    summary = inspect_int8(convert_qat(qat, calibration=calib)).summary()
    assert summary["float_activations"] == 0
    assert not any(op.startswith(("CUSTOM", "Flex")) for op in summary["ops"])


# --- training ----------------------------------------------------------------------------------

def test_short_training_lowers_the_loss():
    from tfkit.gen.models import build_super_resolution
    from tfkit.gen.train import GenTrainConfig, fit_linear_path, train_super_resolution

    # piecewise-constant frames: bilinear upsampling blurs every edge, a trained model need not
    rng = np.random.default_rng(1)
    frames = np.kron(rng.random((4, 8, 8, 3)), np.ones((1, 6, 6, 1))).astype(np.float32)
    model = build_super_resolution(2, channels=8, blocks=1)
    config = GenTrainConfig(steps=150, batch_size=8, patch=16, learning_rate=5e-3, check_batch=32)
    result = train_super_resolution(model, frames, 2, config, progress=False, linear_init=False)
    # the check batch starts at the bilinear baseline; training must beat it (a frozen model cannot)
    assert result.final_loss < 0.97 * result.initial_loss, (result.initial_loss, result.final_loss)
    assert np.mean(result.history[-3:]) < np.mean(result.history[:3])
    assert len(result.history) == 10
    # the closed-form linear path explains a good part of what bilinear upsampling misses
    assert 0.1 < fit_linear_path(build_super_resolution(2, channels=8, blocks=1), frames, 2) <= 1.0


def test_bad_training_config():
    from tfkit.gen.train import GenTrainConfig

    with pytest.raises(UsageError, match="unknown loss"):
        GenTrainConfig(loss="l3")
    with pytest.raises(UsageError, match="steps must be >= 1, got 0"):
        GenTrainConfig(steps=0)
