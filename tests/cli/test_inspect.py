"""`tfkit inspect` through click's CliRunner, on an artifact made by `tfkit data/build/convert`."""
from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from tfkit.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(dataset folder, float32 tflite folder) of an untrained 7-class tiny model."""
    out = tmp_path_factory.mktemp("inspect")
    steps = [
        ["data", "--frames", 4, "--size", 32, "--videos-per-class", 2, "--video-frames", 8, "--video-size", 40,
         "--val-fraction", 0.5, "--out", out / "d", "-q"],
        ["build", "--frames", 4, "--size", 32, "--alpha", 0.35, "--stages", 2, "--head-channels", 16,
         "--out", out / "m", "-q"],
        ["convert", out / "m", "--data", out / "d", "--precision", "float32", "--parity-clips", 4,
         "--out", out / "c", "-q"],
    ]
    for args in steps:
        r = invoke(*args)
        assert r.exit_code == 0, r.output
    return out / "d", out / "c"


def assert_error_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


def test_convert_embeds_the_metadata_and_records_its_size(converted):
    from tfkit.artifacts import Artifact
    from tfkit.convert.metadata import read_metadata

    data_dir, tflite_dir = converted
    art = Artifact.load(tflite_dir)
    data = art.file("model").read_bytes()
    meta = read_metadata(data)
    classes = json.loads((data_dir / "manifest.json").read_text())["spec"]["classes"]
    assert meta is not None and list(meta.labels) == classes
    assert (meta.form, meta.precision, meta.frames, meta.size, meta.normalization) == \
        ("clip", "float32", 4, 32, "symmetric")
    assert meta.input.name == art.manifest.spec["input"]["name"] and meta.input.shape == (1, 4, 32, 32, 3)
    assert meta.recommended_delegate == "xnnpack" and meta.model == art.manifest.spec["model"]
    assert 0 < art.metrics["metadata_bytes"] < 4096 and art.metrics["size_bytes"] == len(data)
    assert art.metrics["parity"]["max_abs_logit_diff"] < 1e-3


def test_inspect_json_on_an_artifact_folder(converted):
    data_dir, tflite_dir = converted
    r = invoke("inspect", tflite_dir, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["tfkit"]["labels"] == json.loads((data_dir / "manifest.json").read_text())["spec"]["classes"]
    assert info["path"].endswith("model.tflite") and info["inputs"][0]["shape"] == [1, 4, 32, 32, 3]
    assert info["tflite_runtime_2_14"]["verdict"] in ("yes", "no", "unknown")
    assert info["min_runtime_version"] and info["ops"]


def test_inspect_summary_on_the_file(converted):
    _, tflite_dir = converted
    r = invoke("inspect", tflite_dir / "model.tflite")
    assert r.exit_code == 0, r.output
    out = r.stdout
    for needle in ("labels", "down, left, right", "(7)", "symmetric: x = pixel * 0.00784314 - 1",
                   "4 frames of 32 px", "clip, precision float32", "xnnpack (recommended)",
                   "input ", "clip: [1, 4, 32, 32, 3] float32", "output", "logits", "CONV_2D v",
                   "min runtime", "tflite-rt 2.14"):
        assert needle in out, out


def test_summary_of_metadata_without_a_clip_spec(converted):
    from tfkit.cli.inspect import summary
    from tfkit.convert.metadata import describe_file

    info = describe_file(converted[1] / "model.tflite")
    info["tfkit"].update(normalization=None, pixel_scale=None, pixel_offset=None, frames=None, stride=None)
    out = summary(converted[1], info)
    assert "unknown (converted without a clip spec)" in out and "? frames of 32 px, sampling not recorded" in out


@pytest.mark.parametrize("content", [
    b"",
    b"not a model at all, just text",
    b"\x08\x00\x00\x00TFL3" + bytes(range(256)) * 8,  # the right identifier, garbage tables
    "truncated",
])
def test_damaged_files_are_one_error_line_exit_2(tmp_path, converted, content):
    if content == "truncated":
        content = (converted[1] / "model.tflite").read_bytes()[:5000]
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    for extra in ([], ["--json"]):
        assert_error_exit_2(invoke("inspect", path, *extra), "bad.tflite")


def test_bad_paths_exit_2(tmp_path, converted):
    assert_error_exit_2(invoke("inspect", tmp_path / "nope.tflite"), "does not exist")
    assert_error_exit_2(invoke("inspect", converted[0]), "expected tflite_model", "tfkit convert")
    assert_error_exit_2(invoke("inspect", tmp_path), "not a tfkit artifact folder")


def test_a_crashing_or_hanging_reader_is_an_error_not_a_crash(converted, monkeypatch):
    from tfkit.convert import metadata as md

    model = converted[1] / "model.tflite"
    monkeypatch.setattr(md, "child_command", lambda path: [sys.executable, "-c",
                                                           "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert_error_exit_2(invoke("inspect", model), "crashed the reader process (SIGKILL)")
    monkeypatch.setattr(md, "PARSE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(md, "child_command", lambda path: [sys.executable, "-c", "import time; time.sleep(30)"])
    assert_error_exit_2(invoke("inspect", model), "took longer than 0.5 s")
