"""int8 per-layer error and `--repair auto` (tfkit.convert.repair) on tiny real models: a trained
Keras model with one outlier channel (function-preserving in float, int8-hostile), the real
TFLite calibrator, quantizer, debugger and interpreter. Nothing under test is faked."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.errors import UsageError

OUTLIER = 1000.0


def _outlier_model(seed: int = 0):
    """A small classifier trained on a learnable task, then given an outlier: a fixed identity
    layer ("outlier") whose channel 3 is multiplied by 1000 and divided back in the logits layer.
    Float outputs are unchanged; int8's one per-tensor activation range for that layer's output
    becomes 1000x too wide, and every other channel rounds to zero."""
    from tfkit._compat.keras import keras

    K = keras()
    K.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(360, 6, 6, 2)).astype("float32")
    y = np.argmax(x.reshape(len(x), -1) @ rng.normal(size=(72, 4)), -1)
    inp = K.Input((6, 6, 2), name="clip")
    h = K.layers.Flatten()(K.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inp))
    h = K.layers.Dense(24, activation="relu", name="feat")(h)
    h = K.layers.Dense(24, name="outlier", kernel_initializer="identity", use_bias=False, trainable=False)(h)
    model = K.Model(inp, K.layers.Dense(4, name="logits")(h))
    model.compile("adam", K.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=25, batch_size=32, verbose=0)
    s = np.ones(24, "float32")
    s[3] = OUTLIER
    plain = np.argmax(model.predict(x, verbose=0), -1)
    model.get_layer("outlier").set_weights([np.diag(s)])
    k, b = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([k / s[:, None], b])
    assert (np.argmax(model.predict(x, verbose=0), -1) == plain).mean() > 0.99  # float function kept
    return model, x, y


@pytest.fixture(scope="module")
def outlier():
    return _outlier_model()


def _int8_drop(model, flatbuffer: bytes, x, y) -> float:
    """Accuracy drop of `flatbuffer` vs the Keras model on (x, y), computed independently of repair."""
    from tfkit.convert.parity import TFLiteModel

    tfl = TFLiteModel(flatbuffer)
    got = np.concatenate([tfl(c[None]) for c in x])
    ref = model.predict(x, verbose=0)
    return float(np.mean(np.argmax(ref, -1) == y) - np.mean(np.argmax(got, -1) == y))


def test_layer_errors_flag_the_outlier_layer_that_rmse_over_scale_hides(outlier):
    from tfkit.convert.repair import calibrate, layer_errors

    model, x, _ = outlier
    calibrated, samples = calibrate(model, [c[None] for c in x[:48]])
    rows = layer_errors(calibrated, samples, max_samples=8)
    row = {n: next(r for r in rows if f"/{n}/" in r["tensor_name"]) for n in ("conv", "feat", "outlier")}
    # The crushed channels: most of the outlier layer's output is lost (relative error near 1) ...
    assert row["outlier"]["channel_rel_error"] > 0.5
    assert row["outlier"]["channel_rel_error"] > 10 * max(row["feat"]["channel_rel_error"],
                                                          row["conv"]["channel_rel_error"])
    # ... while rmse/scale, in units of the 1000x-stretched step, looks like plain rounding.
    assert row["outlier"]["rmse_over_scale"] < 0.3
    assert len(row["outlier"]["consumers"]) == 1  # the logits layer reads it
    worst_two = {r["tensor_name"] for r in rows[:2]}
    assert row["outlier"]["tensor_name"] in worst_two


def test_repair_auto_keeps_the_outlier_float_and_the_drop_falls(outlier):
    from tfkit.convert.repair import repair_int8

    model, x, y = outlier
    calib, test = slice(0, 160), slice(160, 360)  # disjoint: repair sees only the first
    fb, report = repair_int8(model, x[calib], y[calib], budget=0.01, max_float=3, runs=5)
    assert report["before"]["drop"] > 0.2  # plain int8 is broken by the outlier
    assert report["within_budget"] and report["chosen"]["drop"] <= 0.01
    assert any("/outlier/" in n for n in report["chosen"]["kept_float"])
    assert 1 <= len(report["chosen"]["kept_float"]) <= 2
    # Held-out clips the repair never saw agree: the repaired model's drop is small, plain int8's is not.
    assert _int8_drop(model, fb, x[test], y[test]) <= 0.03
    cost = report["cost"]
    assert cost["bytes_after"] == len(fb) and cost["latency_ms_before"] > 0 and cost["latency_ms_after"] > 0
    # every variant tried is listed in order, the plain one first
    assert report["trials"][0] == report["before"] and report["trials"][0]["kept_float"] == []
    assert report["before"]["drop_se"] > 0 and all("drop_se" in t for t in report["trials"] if t["bytes"])
    # The warning names the variants whose drop is within two standard errors of the budget, if any.
    close = [t for t in report["trials"] if t["bytes"] and abs(t["drop"] - 0.01) < 2 * t["drop_se"]]
    assert ("warning" in report) == bool(close)


def test_resolution_warning_fires_only_for_variants_near_the_budget():
    from tfkit.convert.repair import resolution_warning

    far = [{"drop": 0.45, "drop_se": 0.03}, {"drop": 0.0, "drop_se": 0.0}, {"drop": None, "refused": "no int16"}]
    assert resolution_warning(far, 0.01, 252) is None  # a broken file and a clean one: both clearly decided
    near = far + [{"drop": 0.016, "drop_se": 0.007}]  # 4 clips of 252 against a 2.5-clip budget
    warning = resolution_warning(near, 0.01, 252)
    assert "1 of 4 variants" in warning and "252 calibration clips" in warning and "0.0070" in warning


def test_repair_judges_the_calibration_clips_it_was_given_and_no_others(outlier):
    """The drop the repair reports is the drop on the calibration clips (recomputed here with an
    independent int8 conversion of the same clips): the clips it is given, and only those."""
    from tfkit.convert.repair import repair_int8
    from tfkit.convert.tflite import convert_keras

    model, x, y = outlier
    a = slice(0, 60)
    _, report = repair_int8(model, x[a], y[a], budget=1.0, max_float=0, runs=3)  # budget 1: plain int8 is chosen
    plain = convert_keras(model, "int8", calibration=[c[None] for c in x[a]])
    assert report["measured_on"] == {"split": "calibration", "clips": 60, "drop": "accuracy"}
    assert report["before"]["drop"] == pytest.approx(_int8_drop(model, plain, x[a], y[a]), abs=1 / 60 + 1e-9)
    # its standard error is the paired per-clip difference's; a budget of 1 is far above it: no warning
    assert 0 < report["before"]["drop_se"] < 0.1 and "warning" not in report
    # Unlabelled: the drop becomes the fraction of changed top-1 classes on the same clips.
    _, unlabelled = repair_int8(model, x[a], None, budget=1.0, max_float=0, runs=3)
    assert unlabelled["measured_on"]["drop"] == "top-1 changes" and unlabelled["before"]["drop"] >= 0


def test_per_tensor_is_chosen_where_it_is_safe_and_the_file_shrinks():
    """A model without an outlier is within budget as plain int8: repair then picks per-tensor
    scales when they keep the drop in budget, since they are smaller."""
    from tfkit._compat.keras import keras
    from tfkit.convert.repair import repair_int8

    K = keras()
    K.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6, 6, 2)).astype("float32")
    inp = K.Input((6, 6, 2), name="clip")
    h = K.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
    model = K.Model(inp, K.layers.Dense(4)(K.layers.GlobalAveragePooling2D()(h)))
    y = np.argmax(model.predict(x, verbose=0), -1)  # labels the float model gets right
    _, report = repair_int8(model, x, y, budget=0.05, max_float=1, runs=3)
    per_channel = next(t for t in report["trials"] if t["granularity"] == "per_channel")
    per_tensor = next(t for t in report["trials"] if t["granularity"] == "per_tensor")
    assert per_tensor["bytes"] < per_channel["bytes"]
    expect = {"per_tensor"} if per_tensor["drop"] <= 0.05 else {"per_channel", "mixed"}
    assert report["chosen"]["granularity"] in expect and report["chosen"]["kept_float"] == []


@pytest.mark.parametrize("kw, words", [
    ({"precision": "int8", "repair": "always"}, "unknown repair"),
    ({"precision": "float32", "repair": "auto"}, "--precision int8"),
    ({"precision": "int8", "repair": "auto", "keep_float": 1}, "--keep-float"),
    ({"precision": "int8", "repair": "auto", "per_channel": False}, "--no-per-channel"),
    ({"precision": "int8", "repair_budget": 1.5}, "repair_budget"),
])
def test_convert_config_refuses_bad_repair_settings(kw, words):
    from tfkit.steps.convert import ConvertConfig

    with pytest.raises(UsageError, match=words):
        ConvertConfig(**kw)


def test_convert_step_records_layer_errors_and_repairs_on_the_train_split(tiny_trained, tiny_data, tmp_path):
    """The step's real path: plain int8 records per-layer error; --repair auto judges the drop on
    the calibration clips it drew from the train split (16 of them), never the parity clips (8)."""
    from tfkit.steps import RunContext, run_step
    from tfkit.steps.convert import ConvertConfig, ConvertStep

    ctx = RunContext(progress=False, log=lambda m: None)
    bars = {"min_top1_agreement": 0.0, "max_abs_logit_diff": 1e9}  # an untrained model: parity is not the point
    plain = run_step(ConvertStep(ConvertConfig(precision="int8", calibration_clips=16, parity_clips=8, **bars)),
                     [tiny_trained, tiny_data], tmp_path / "int8", ctx)
    errors = plain.metrics["layer_errors"]
    assert errors["granularity"] == "per_channel" and len(errors["layers"]) >= 3
    assert all(r["channel_rel_error"] >= 0 and r["op_name"] for r in errors["layers"])
    repaired = run_step(ConvertStep(ConvertConfig(precision="int8", repair="auto", repair_budget=0.5,
                                                  calibration_clips=16, parity_clips=8, **bars)),
                        [tiny_trained, tiny_data], tmp_path / "repaired", ctx)
    rep = repaired.metrics["repair"]
    assert rep["measured_on"] == {"split": "train (calibration clips)", "clips": 16, "drop": "accuracy"}
    assert rep["within_budget"] and rep["chosen"]["drop"] <= 0.5
    assert rep["cost"]["bytes_after"] <= rep["cost"]["bytes_before"]  # budget 0.5: no float op needed
    assert repaired.metrics["layer_errors"]["layers"]
    # Plain int8 is re-rounded by default, and so is every int8 variant the repair judges: it writes
    # the variant as it judged it.
    assert plain.metrics["rounding"]["rounding"] == "optimized" and plain.metrics["rounding"]["layers"] > 0
    assert repaired.metrics["rounding"] == {"rounding": "optimized"}
    assert all(t["rounding"] == "optimized" for t in rep["trials"] if t["activations"] == "int8" and t["bytes"])
    nearest = run_step(ConvertStep(ConvertConfig(precision="int8", repair="auto", repair_budget=0.5, rounding="nearest",
                                                 calibration_clips=16, parity_clips=8, **bars)),
                       [tiny_trained, tiny_data], tmp_path / "repaired-nearest", ctx)
    assert nearest.metrics["rounding"] == {"rounding": "nearest"}
    assert {t["rounding"] for t in nearest.metrics["repair"]["trials"] if t["bytes"]} == {"nearest"}
    if nearest.metrics["repair"]["chosen"]["granularity"] == rep["chosen"]["granularity"]:  # same variant, two roundings
        from tfkit.convert.granularity import _model, _values, _weighted

        a, b = (_model(r.file("model").read_bytes()) for r in (repaired, nearest))
        assert any((_values(a, k) != _values(b, _weighted(b)[n][1])).any() for n, (_, k, _) in _weighted(a).items())


@pytest.mark.parametrize("args, words", [
    (["--repair", "sometimes"], "unknown repair 'sometimes'"),
    (["--repair", "auto", "--keep-float", "1"], "--keep-float"),
])
def test_cli_refuses_bad_repair_with_one_error_line(tiny_trained, tiny_data, tmp_path, args, words):
    from click.testing import CliRunner

    from tfkit.cli.main import cli

    r = CliRunner().invoke(cli, ["convert", str(tiny_trained.path), "--data", str(tiny_data.path), "--precision", "int8",
                                 *args, "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and words in r.stderr and r.stderr.strip().startswith("error:")
    assert not (tmp_path / "o").exists()


def test_int16_activations_are_the_last_resort_when_no_op_may_stay_float(outlier):
    """With no op allowed in float (max_float=0), int8 cannot fit the outlier's range; int16
    activations (65536 levels: the other channels keep a few) nearly can (3 of 120 clips flip here),
    and are then chosen, timed."""
    from tfkit.convert.repair import repair_int8

    model, x, y = outlier
    fb, report = repair_int8(model, x[:120], y[:120], budget=0.05, max_float=0, runs=3)
    assert [(t["granularity"], t["activations"]) for t in report["trials"]] == [
        ("per_channel", "int8"), ("per_tensor", "int8"), ("per_channel", "int16")]
    assert report["chosen"]["activations"] == "int16" and report["within_budget"]
    assert report["chosen"]["drop"] <= 0.05 and report["before"]["drop"] > 0.5
    assert report["cost"]["latency_ms_after"] > 0 and report["cost"]["bytes_after"] == len(fb)
