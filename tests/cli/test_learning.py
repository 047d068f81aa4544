"""Training learns, and int8 keeps what it learned. On the built-in motion task (conftest's
`learned`: 7 classes, chance 0.14) validation accuracy must reach 0.6; the int8 conversion must
pass its parity bar at the default top-1 agreement (nothing lowered), and the int8 file, run by
the benchmark runner on the validation clips, must score within a few clips of Keras."""
import json

from tests.cli.test_cli import invoke

MIN_VAL_ACCURACY = 0.6  # measured 0.843 (tests/conftest.py); chance is 1/7


def test_training_learns_the_motion_task(learned):
    m = learned["train"].metrics
    assert m["val_accuracy"] >= MIN_VAL_ACCURACY, m
    assert m["train_accuracy"] >= MIN_VAL_ACCURACY - 0.1, m  # learned, not a lucky validation split


def test_int8_at_the_default_parity_bar_keeps_the_accuracy(tmp_path, learned):
    d, trained = learned["data"].path, learned["train"]
    r = invoke("convert", trained.path, "--data", d, "--precision", "int8", "--calibration-clips", 32,
               "--out", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    convert = json.loads((tmp_path / "c" / "manifest.json").read_text())["history"][-1]
    parity = convert["metrics"]["parity"]
    assert convert["config"]["min_top1_agreement"] is None  # the precision's own bar: 0.9 for int8
    assert parity["passed"] and parity["top1_agreement"] >= 0.9 and parity["clips"] >= 60, parity
    r = invoke("bench", tmp_path / "c", "--data", d, "--runs", 3, "--warmup", 1, "--out", tmp_path / "b", "-q")
    assert r.exit_code == 0, r.output
    (scored,) = json.loads((tmp_path / "b" / "manifest.json").read_text())["history"][-1]["metrics"].values()
    keras_accuracy = trained.metrics["val_accuracy"]
    assert scored["accuracy"] >= MIN_VAL_ACCURACY and abs(scored["accuracy"] - keras_accuracy) <= 0.05, (
        scored, keras_accuracy)
