"""`tfkit import` then convert/bench/report on a user's image and video models, with and without a
dataset; unsafe files end in one `error:` line and exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.unit.test_user_models import image_model, lambda_model, save, video_model
from tfkit.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def spec_of(path):
    return json.loads((path / "manifest.json").read_text())["spec"]


def run_litert(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if np.issubdtype(inp["dtype"], np.integer):
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("user_cli")
    image, video = image_model(), video_model(classes=7)  # the built-in dataset's 7 classes
    return {"image": save(image, d / "image.h5"), "video": save(video, d / "video.keras"),
            "image_model": image, "lambda": save(lambda_model(), d / "lambda.keras"), "dir": d}


@pytest.fixture(scope="module")
def video_data(user_files):
    """A dataset whose clips fit the video model: 4 frames of 32 x 32."""
    out = user_files["dir"] / "data"
    ok(invoke("data", "--frames", 4, "--size", 32, "--videos-per-class", 2, "--video-frames", 10, "--video-size", 40,
              "--val-fraction", 0.34, "--out", out, "-q"))
    return out


def test_image_model_imports_and_converts_without_a_dataset(user_files, tmp_path):
    ok(invoke("import", user_files["image"], "--out", tmp_path / "m", "-q"))
    assert spec_of(tmp_path / "m")["kind"] == "image"
    x = np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    ref = user_files["image_model"](x).numpy()
    for precision, atol in (("float32", 1e-4), ("int8", 0.3)):
        r = ok(invoke("convert", tmp_path / "m", "--precision", precision, "--calibration-clips", 16,
                      "--parity-clips", 8, "--out", tmp_path / precision))
        assert "random inputs" in r.stderr and "accuracy-free" in r.stderr
        tflite = tmp_path / precision / "model.tflite"
        assert tflite.is_file()
        np.testing.assert_allclose(run_litert(tflite, x), ref, atol=atol)
    assert "smoke test" in r.stderr  # said for the calibrated (int8) run
    metrics = json.loads((tmp_path / "int8" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert metrics["parity_inputs"] == "random"


def test_video_model_converts_with_its_dataset_then_benches_and_reports(user_files, video_data, tmp_path):
    ok(invoke("import", user_files["video"], "--name", "myvideo", "--out", tmp_path / "m", "-q"))
    # the imported user model is untrained (near-uniform logits, whose argmax int8 rounding flips), so the
    # agreement bar is lowered here; tests/cli/test_learning.py holds a trained model's int8 to the default
    ok(invoke("convert", tmp_path / "m", "--data", video_data, "--precision", "int8", "--calibration-clips", 8,
              "--parity-clips", 8, "--min-top1-agreement", 0.0, "--out", tmp_path / "int8", "-q"))
    ok(invoke("convert", tmp_path / "m", "--precision", "float32", "--parity-clips", 4, "--out", tmp_path / "f32",
              "-q"))
    spec = spec_of(tmp_path / "int8")
    assert spec["input"]["shape"] == [1, 4, 32, 32, 3] and spec["user"] and spec["name"] == "myvideo"
    x = np.random.default_rng(2).uniform(-1, 1, (1, 4, 32, 32, 3)).astype(np.float32)
    assert run_litert(tmp_path / "f32" / "model.tflite", x).shape == (1, 7)
    ok(invoke("bench", tmp_path / "int8", tmp_path / "f32", "--data", video_data, "--runs", 3, "--warmup", 1,
              "--out", tmp_path / "b", "-q"))
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [r["name"] for r in results] == ["myvideo-int8", "myvideo-float32"]
    assert all(r["accuracy"] is not None for r in results)  # the clips and classes fit the model
    ok(invoke("report", tmp_path / "b", "--out", tmp_path / "r", "-q"))
    assert (tmp_path / "r" / "report.json").is_file()


def test_image_model_with_a_video_dataset_is_a_usage_error(user_files, video_data, tmp_path):
    ok(invoke("import", user_files["image"], "--out", tmp_path / "m", "-q"))
    r = invoke("convert", tmp_path / "m", "--data", video_data, "--out", tmp_path / "c")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "[4, 32, 32, 3]" in r.stderr and "[None, 32, 32, 3]" in r.stderr
    # bench without a dataset (or with one that does not fit): latency only
    ok(invoke("convert", tmp_path / "m", "--parity-clips", 4, "--out", tmp_path / "f32", "-q"))
    ok(invoke("bench", tmp_path / "f32", "--runs", 3, "--warmup", 1, "--out", tmp_path / "b", "-q"))
    assert json.loads((tmp_path / "b" / "results.json").read_text())[0]["accuracy"] is None


def test_lambda_model_needs_trust_code(user_files, tmp_path):
    r = invoke("import", user_files["lambda"], "--out", tmp_path / "m")
    assert r.exit_code == 2 and "Traceback" not in r.output
    err = [line for line in r.stderr.strip().splitlines() if not line.startswith("[import]")]
    assert err[0].startswith("error:") and "'double' (Lambda)" in err[0] and "--trust-code" in err[0]
    assert len(err) == 2 and "m.failed" in err[1]  # one error line, then where the failed step's log is
    assert not (tmp_path / "m").exists() and (tmp_path / "m.failed" / "step.log").is_file()
    ok(invoke("import", user_files["lambda"], "--trust-code", "--out", tmp_path / "m", "-q"))
    assert spec_of(tmp_path / "m")["trusted"] is True
    ok(invoke("convert", tmp_path / "m", "--parity-clips", 4, "--out", tmp_path / "c", "-q"))  # reloads with trust
    assert (tmp_path / "c" / "model.tflite").is_file()
