"""QAT (tfkit.convert.qat) and selective int8 (tfkit.convert.selective) on tiny models."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import UsageError
from tfkit.models import VideoModelSpec, build

SPEC = VideoModelSpec(num_classes=5, frames=2, size=32, alpha=0.35, stages=1, head_channels=16,
                      frame_stack=True, causal=True, dropout=0.0)


def _clips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *SPEC.input_shape)).astype(np.float32)


@pytest.fixture(scope="module")
def zoo():
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(0)
    model = build(SPEC)
    # Spread the logits so that int8 rounding cannot make every clip's prediction the same.
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 20.0, bias])
    return model


@pytest.fixture(scope="module")
def qat(zoo):
    from tfkit.convert.qat import quantize_aware

    before = ([w.copy() for w in zoo.get_weights()], zoo.to_json())
    q = quantize_aware(zoo)
    after = (zoo.get_weights(), zoo.to_json())
    # Let the activation ranges see data (training-mode passes update the moving averages).
    for i in range(3):
        q(_clips(4, seed=10 + i), training=True)
    return q, before, after


@pytest.fixture(scope="module")
def qat_int8(qat):
    from tfkit.convert.qat import convert_qat

    return convert_qat(qat[0])


def _toy(extra):
    """input -> Conv2D -> BN -> ReLU -> extra(...) -> GAP -> Dense: a tiny functional model."""
    from tfkit._compat.keras import keras

    K = keras()
    x = inp = K.Input((8, 8, 3), name="img")
    x = K.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = K.layers.BatchNormalization(name="bn")(x)
    x = K.layers.ReLU(6.0, name="relu")(x)
    x = extra(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, K.layers.Dense(3, name="out")(x), name="toy")


def _custom_layer(with_weight: bool):
    from tfkit._compat.keras import keras

    class Mystery(keras().layers.Layer):
        def build(self, shape):
            if with_weight:
                self.w = self.add_weight(name="w", shape=(shape[-1],))

        def call(self, x):
            return x * self.w if with_weight else x[:, ::-1]

    return Mystery


def test_every_tfkit_layer_has_a_rule():
    from tfkit.convert.qat import LAYER_RULES
    from tfkit.models.layers import custom_objects

    assert set(custom_objects()) <= set(LAYER_RULES)
    assert LAYER_RULES["HardSwish"] == "output" and LAYER_RULES["FrameStack"] == "pass_through"
    assert LAYER_RULES["TemporalShift"] == "output"  # computed by a depthwise conv, so it has a range of its own


def test_unknown_custom_layer_is_named():
    from tfkit.convert.qat import quantize_aware

    model = _toy(lambda x: _custom_layer(False)(name="odd_one")(x))
    with pytest.raises(UsageError, match=r"unsupported layer for QAT: 'odd_one' \(Mystery\).*register_quantize_config"):
        quantize_aware(model)


def test_unknown_layer_with_weights_is_named():
    from tfkit.convert.qat import quantize_aware

    model = _toy(lambda x: _custom_layer(True)(name="scaler")(x))
    with pytest.raises(UsageError, match=r"unsupported layer with weights for QAT: 'scaler' \(Mystery\)"):
        quantize_aware(model)


def test_registered_custom_layer_is_wrapped(monkeypatch):
    from tfkit.convert import qat as qat_mod

    monkeypatch.setitem(qat_mod.LAYER_RULES, "Mystery", qat_mod.PASS_THROUGH)
    mystery = _custom_layer(False)
    model = _toy(lambda x: mystery(name="odd_one")(x))
    with pytest.raises(UsageError, match="quantize rule"):
        qat_mod.register_quantize_config("Mystery", "sometimes")
    coverage = qat_mod.quantized_layer_coverage(qat_mod.quantize_aware(model))
    assert "odd_one" in coverage["wrapped"] and coverage["plain"] == ["img (InputLayer)"]


def test_lambda_and_subclassed_models_are_refused():
    from tfkit._compat.keras import keras
    from tfkit.convert.qat import quantize_aware

    K = keras()
    with pytest.raises(UsageError, match="Lambda layer 'flip'"):
        quantize_aware(_toy(lambda x: K.layers.Lambda(lambda t: t[:, ::-1], name="flip")(x)))

    class Sub(K.Model):
        def call(self, x):
            return x

    with pytest.raises(UsageError, match="subclassed"):
        quantize_aware(Sub())


def test_qat_wraps_every_layer_and_leaves_the_input_model_alone(zoo, qat):
    from tfkit.convert.qat import quantized_layer_coverage

    q, (w_before, cfg_before), (w_after, cfg_after) = qat
    assert cfg_before == cfg_after
    assert all(np.array_equal(a, b) for a, b in zip(w_before, w_after, strict=True))
    assert q is not zoo and not any(layer.name.startswith("quant_") for layer in zoo.layers)
    coverage = quantized_layer_coverage(q)
    assert coverage["plain"] == ["clip (InputLayer)"]
    assert len(coverage["quantize_layer"]) == 1
    wrapped = set(coverage["wrapped"])
    assert {"fold_time", "frame_stack", "stem_conv", "stem_bn", "unfold_time", "logits"} <= wrapped


def test_qat_int8_is_integer_and_matches_qat_keras(qat, qat_int8):
    from tfkit.convert.parity import TFLiteModel, compare_logits

    q = qat[0]
    tfl = TFLiteModel(qat_int8)
    assert tfl.input["dtype"] == np.int8 and tfl.output["dtype"] == np.int8
    ops = tfl.op_counts()
    assert "CONV_2D" in ops and not any(op.startswith(("CUSTOM", "Flex")) for op in ops)
    assert ops.get("DEQUANTIZE", 0) == 0
    assert tfl.float_activation_count() == 0
    assert tfl.xnnpack_partitions() <= 2
    clips = _clips(12, seed=1)
    ref = np.asarray(q(clips, training=False))
    assert np.std(ref, axis=0).max() > 0, "degenerate test: every clip gives the same logits"
    got = np.concatenate([tfl(c[None]) for c in clips])
    report = compare_logits(ref, got, "int8", raise_on_fail=False)
    assert report.top1_agreement >= 0.9, report


def test_layer_error_report_and_selective_keep_float():
    from tfkit.convert.selective import convert_selective, float_ops

    model = _toy(lambda x: x)
    clips = [np.random.default_rng(i).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32) for i in range(6)]
    flatbuffer, report = convert_selective(model, clips, keep_float=1, runs=3)
    rows = report["layers"]
    scores = [r["rmse_over_scale"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    # One row per quantized op of the full int8 model (its QUANTIZE/DEQUANTIZE at the float I/O excluded).
    full_ops = report["full_int8"]["ops"]
    assert len(rows) == len({r["tensor_name"] for r in rows})
    assert len(rows) == sum(n for op, n in full_ops.items() if op not in ("QUANTIZE", "DEQUANTIZE"))
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op_name"] for r in rows}
    kept = float_ops(flatbuffer)
    assert [k["tensor_name"] for k in kept] == [rows[0]["tensor_name"]]
    assert report["kept_float"][0]["tensor_name"] == rows[0]["tensor_name"]
    for key in ("full_int8", "selective"):
        cost = report[key]
        assert cost["bytes"] > 0 and cost["latency_ms"] > 0 and cost["xnnpack_partitions"] >= 1
    assert report["full_int8"]["float_activations"] < report["selective"]["float_activations"]
    with pytest.raises(UsageError, match="not quantized op outputs"):
        convert_selective(model, clips, keep_float=["no_such_tensor"], runs=1)


def _scalar_ranges(qat_model) -> dict[str, float]:
    """Every per-tensor activation range variable of a QAT model (weights' ranges excluded)."""
    return {w.name: float(w.numpy()) for layer in qat_model.layers for w in layer.weights
            if w.name.endswith(("_min:0", "_max:0")) and w.shape.rank == 0 and "kernel" not in w.name}


def test_calibrated_qat_ranges_are_the_float_activation_ranges():
    """TFMOT starts every activation range at [-6, 6] and moves it by 0.1% a step; a short QAT
    fine-tune then converts with ranges near [-6, 6] (issue 27). Calibrated, each range is the
    float model's own over the clips, as post-training int8 would measure it."""
    from tfkit._compat.keras import keras
    from tfkit.convert.qat import calibrate_ranges, quantize_aware

    K = keras()
    model = _toy(lambda x: x)
    clips = np.random.default_rng(3).uniform(-1, 1, (10, 8, 8, 3)).astype(np.float32)
    relu = np.asarray(K.Model(model.input, model.get_layer("relu").output)(clips))
    logits = np.asarray(model(clips))
    fresh = _scalar_ranges(quantize_aware(model))
    assert set(fresh.values()) <= {-6.0, 6.0, 0.0}  # TFMOT's starting ranges (the input's starts at 0)
    qat = quantize_aware(model)
    assert calibrate_ranges(qat, clips) >= 3
    ranges = _scalar_ranges(qat)
    np.testing.assert_allclose([ranges["quant_relu/output_min:0"], ranges["quant_relu/output_max:0"]],
                               [0.0, relu.max()], rtol=1e-5)
    out = [v for k, v in ranges.items() if k.startswith("quant_out/")]
    np.testing.assert_allclose(sorted(out), [min(logits.min(), 0.0), max(logits.max(), 0.0)], rtol=1e-5)
    inputs = sorted(v for k, v in ranges.items() if k.startswith("quantize_layer"))
    np.testing.assert_allclose(inputs, [clips.min(), clips.max()], rtol=1e-5)
    # calibration= on quantize_aware is the same pass; the float model is untouched
    again = _scalar_ranges(quantize_aware(model, calibration=clips))
    assert sorted(again.values()) == sorted(ranges.values())
    with pytest.raises(UsageError, match="no clips"):
        calibrate_ranges(qat, clips[:0])


def test_calibrated_qat_int8_keeps_logits_beyond_six():
    """Logits beyond +-6: with TFMOT's starting ranges the int8 model clips them (and spends half
    the ReLU codes on negatives); calibrated, the int8 model follows the float one."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.convert.qat import convert_qat, quantize_aware

    model = _toy(lambda x: x)
    clips = np.random.default_rng(4).uniform(-1, 1, (24, 8, 8, 3)).astype(np.float32)
    spread = np.asarray(model(clips)).std(0).max()
    dense = model.get_layer("out")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * (5.0 / spread), bias])
    ref = np.asarray(model(clips))
    assert np.abs(ref).max() > 8, "degenerate test: the logits stay within TFMOT's starting range"
    int8 = {}
    for name, calibration in (("fresh", None), ("calibrated", clips[:16])):
        tfl = TFLiteModel(convert_qat(quantize_aware(model, calibration=calibration)))
        int8[name] = (np.concatenate([tfl(c[None]) for c in clips]), tfl.output["quantization"][0])
    got, scale = int8["calibrated"]
    assert scale * 255 >= 0.95 * np.ptp(ref)  # the output range covers the float logits
    assert np.abs(got - ref).max() < 0.05 * np.ptp(ref)
    clipped, fresh_scale = int8["fresh"]
    assert fresh_scale * 255 < 0.8 * np.ptp(ref) and np.abs(clipped - ref).max() > 2.0  # what the fix removes


def test_train_qat_keeps_batchnorm_on_its_moving_statistics(zoo):
    """QAT fine-tunes against the normalization the int8 model folds (issue 27): every BN stays on
    its moving statistics, gamma and beta fixed; the convs still train. freeze_bn=False is TFMOT's
    own behaviour, batch statistics, which moves them."""
    from tfkit.convert.qat import quantize_aware, train_qat
    from tfkit.data.folder import ClipSet
    from tfkit.train import TrainConfig

    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (8, *SPEC.input_shape), dtype=np.uint8)
    data = ClipSet(x, rng.integers(0, 5, 8).astype(np.int64), tuple(f"c{i}" for i in range(8)),
                   tuple("abcde"))
    config = TrainConfig(epochs=1, batch_size=4, augment=False)

    def bn_and_conv(q):
        bn = [w.numpy().copy() for layer in q.layers for w in layer.weights
              if "stem_bn" in layer.name and "moving_mean" in w.name]
        conv = [w.numpy().copy() for layer in q.layers for w in layer.weights
                if layer.name == "quant_stem_conv" and w.name.endswith("kernel:0")]
        assert bn and conv
        return bn, conv

    moved = {}
    for freeze in (True, False):
        q = quantize_aware(zoo, calibration=_clips(4, seed=7))
        (bn0, conv0) = bn_and_conv(q)
        train_qat(q, data, data, config, progress=False, freeze_bn=freeze)
        (bn1, conv1) = bn_and_conv(q)
        assert not np.array_equal(conv0[0], conv1[0])  # the weights do train
        moved[freeze] = not np.array_equal(bn0[0], bn1[0])
    assert moved == {True: False, False: True}


def test_float_from_qat_carries_the_tuned_weights_to_the_stream_form(zoo):
    """The stream form cannot be QAT-wrapped (state inputs); it is built from the QAT-tuned float
    weights, every layer's, with the input model untouched."""
    from tfkit.convert.qat import float_from_qat, quantize_aware
    from tfkit.models import run_stream, to_streaming

    q = quantize_aware(zoo)
    for layer in q.layers:  # stands in for a fine-tune: every float weight moves
        for w in layer.weights:
            if w.trainable or "moving" in w.name:
                w.assign(w * 1.5 + 0.01)
    before = [w.copy() for w in zoo.get_weights()]
    tuned = float_from_qat(q, zoo)
    assert all(np.array_equal(a, b) for a, b in zip(before, zoo.get_weights(), strict=True))
    changed = [layer.name for layer in tuned.layers if layer.weights and not all(
        np.array_equal(a, b) for a, b in zip(layer.get_weights(), zoo.get_layer(layer.name).get_weights(), strict=True))]
    assert changed == [layer.name for layer in zoo.layers if layer.weights]
    conv = next(w for w in q.get_layer("quant_stem_conv").weights if w.name.endswith("kernel:0"))
    np.testing.assert_array_equal(tuned.get_layer("stem_conv").kernel.numpy(), conv.numpy())
    clip = _clips(1, seed=9)[0]
    np.testing.assert_allclose(run_stream(to_streaming(tuned, SPEC), clip)[-1], np.asarray(tuned(clip[None]))[0],
                               atol=1e-4)
