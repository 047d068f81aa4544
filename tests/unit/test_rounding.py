"""Optimized int8 kernel rounding (tfkit.convert.rounding) on tiny real models: the real TFLite
converter, calibrator and interpreter; the error is measured on held-out inputs it never saw."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def relu_net():
    """A small conv net with ReLU (non-zero-mean) activations, trained a little on a learnable task."""
    from tfkit._compat.keras import keras

    K = keras()
    K.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 8, 8, 3)).astype("float32")
    y = np.argmax(x.reshape(len(x), -1) @ rng.normal(size=(192, 5)), -1)
    inp = K.Input((8, 8, 3), name="clip")
    h = K.layers.Conv2D(24, 3, padding="same", activation="relu", name="c1")(inp)
    h = K.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(h)
    h = K.layers.Conv2D(32, 1, activation="relu", name="c2")(h)
    model = K.Model(inp, K.layers.Dense(5, name="logits")(K.layers.GlobalAveragePooling2D()(h)))
    model.compile("adam", K.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model, x


def _logit_error(model, flatbuffer: bytes, x) -> float:
    from tfkit.convert.parity import TFLiteModel

    tfl = TFLiteModel(flatbuffer)
    got = np.concatenate([tfl(c[None]) for c in x])
    return float(np.mean(np.abs(got - model.predict(x, verbose=0))))


def _kernels(flatbuffer: bytes) -> dict[str, np.ndarray]:
    from tfkit.convert.granularity import _model, _values, _weighted

    m = _model(flatbuffer)
    return {name: _values(m, k) for name, (_, k, _) in _weighted(m).items()}


def test_optimized_rounding_lowers_held_out_error_and_changes_only_kernels(relu_net):
    from tfkit.convert.rounding import optimize_int8
    from tfkit.convert.tflite import convert_keras

    model, x = relu_net
    calib, held = [c[None] for c in x[:200]], x[200:]
    nearest = convert_keras(model, "int8", calibration=calib)
    optimized, report = optimize_int8(model, nearest, calib)
    assert report["layers"] == 4 and not report["skipped"]  # c1, dw, c2, logits
    assert 0 < report["weights_changed"] < 0.5 and report["output_error_ratio"] < 1.0
    # Held out (never in calibration): the optimized file is closer to float.
    assert _logit_error(model, optimized, held) < _logit_error(model, nearest, held)
    a, b = _kernels(nearest), _kernels(optimized)
    assert a.keys() == b.keys() and any((a[n] != b[n]).any() for n in a)
    assert len(optimized) == len(nearest)  # same graph, scales, biases: only kernel bytes moved


def test_pruned_zeros_stay_zero(relu_net):
    from tfkit.convert.rounding import optimize_int8
    from tfkit.convert.tflite import convert_keras

    model, x = relu_net
    pruned = model.__class__.from_config(model.get_config())
    weights = [w.copy() for w in model.get_weights()]
    weights[0][np.abs(weights[0]) < np.quantile(np.abs(weights[0]), 0.6)] = 0.0  # c1: 60% zeros
    pruned.set_weights(weights)
    calib = [c[None] for c in x[:100]]
    nearest = convert_keras(pruned, "int8", calibration=calib)
    optimized, _ = optimize_int8(pruned, nearest, calib)
    name = next(n for n in _kernels(nearest) if "/c1/" in n)
    before, after = _kernels(nearest)[name], _kernels(optimized)[name]
    assert (before == 0).mean() >= 0.6 and np.array_equal(before == 0, after == 0)


def test_per_tensor_kernels_are_rounded_on_their_one_scale(relu_net):
    from tfkit.convert.granularity import _model, _weighted
    from tfkit.convert.rounding import optimize_int8
    from tfkit.convert.tflite import convert_keras

    model, x = relu_net
    calib, held = [c[None] for c in x[:200]], x[200:]
    nearest = convert_keras(model, "int8", calibration=calib, per_channel=False)
    optimized, report = optimize_int8(model, nearest, calib)
    assert report["layers"] == 4 and not report["skipped"] and report["output_error_ratio"] < 1.0
    assert _logit_error(model, optimized, held) < _logit_error(model, nearest, held)

    def scales(fb):
        m = _model(fb)
        return {n: list(m.subgraphs[0].tensors[k].quantization.scale) for n, (_, k, _) in _weighted(m).items()}

    assert all(len(s) == 1 for s in scales(nearest).values()) and scales(optimized) == scales(nearest)


def test_convert_step_rounds_int8_by_default_and_nearest_on_request(tiny_trained, tiny_data, tmp_path):
    from tfkit.steps import RunContext, run_step
    from tfkit.steps.convert import ConvertConfig, ConvertStep

    ctx = RunContext(progress=False)
    art = {r: run_step(ConvertStep(ConvertConfig(precision="int8", calibration_clips=16, parity_clips=8, rounding=r)),
                       [tiny_trained, tiny_data], tmp_path / r, ctx) for r in ("optimized", "nearest")}
    rep = art["optimized"].metrics["rounding"]
    assert rep["rounding"] == "optimized" and rep["layers"] > 0 and 0 < rep["weights_changed"] < 1
    assert art["nearest"].metrics["rounding"] == {"rounding": "nearest"}
    a = _kernels(art["optimized"].file("model").read_bytes())
    b = _kernels(art["nearest"].file("model").read_bytes())
    assert a.keys() == b.keys() and any((a[n] != b[n]).any() for n in a)


def test_unknown_rounding_is_refused():
    from tfkit.errors import UsageError
    from tfkit.steps.convert import ConvertConfig

    with pytest.raises(UsageError, match="unknown rounding 'up'"):
        ConvertConfig(precision="int8", rounding="up")


def test_convert_step_keeps_nearest_with_the_reason_when_rounding_cannot_run(tiny_trained, tiny_data, tmp_path,
                                                                               monkeypatch):
    """A model the re-rounding cannot handle (here: the re-rounding raises) still converts, as TFLite rounded it."""
    from tfkit.convert import rounding
    from tfkit.errors import ConversionError
    from tfkit.steps import RunContext, run_step
    from tfkit.steps.convert import ConvertConfig, ConvertStep

    def fails(*args, **kw):
        raise ConversionError("no float op matches\nsecond line")

    monkeypatch.setattr(rounding, "optimize_rounding", fails)
    art = run_step(ConvertStep(ConvertConfig(precision="int8", calibration_clips=16, parity_clips=8)),
                   [tiny_trained, tiny_data], tmp_path / "int8", RunContext(progress=False))
    assert art.metrics["rounding"] == {"rounding": "nearest",
                                       "why": "optimized rounding could not run on this model: no float op matches"}
    assert art.metrics["layer_errors"]["layers"]  # per-layer error still recorded (its own calibration)
