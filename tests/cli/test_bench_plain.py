"""`tfkit bench` and `tfkit report` on .tflite files tfkit did not make (built here with TensorFlow
directly, no tfkit metadata), on one that carries tfkit metadata, and on bad files; and the report
saying which inputs fed each number (real clips or random), parity included."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from tfkit.cli.main import cli

CLIP = (2, 8, 8, 3)  # frames, height, width, channels: tiny on purpose
CLASSES = ("a", "b", "c")
BIAS = np.array([0.0, 0.0, 0.55], np.float32)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


def results(bench_dir) -> dict:
    return {r["name"]: r for r in json.loads((bench_dir / "results.json").read_text())}


def _convert(fn, specs, *, int8=False) -> bytes:
    import tensorflow as tf

    concrete = tf.function(fn).get_concrete_function(*specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(-1, 1, s.shape).astype(np.float32) for s in specs]
                                                    for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Third-party .tflite files: a clip classifier (float and full-int8 I/O), a two-input model, a
    model with dynamic height and width, the classifier with tfkit metadata, and two broken files."""
    import tensorflow as tf

    from tfkit.convert.metadata import embed_metadata, metadata_for

    root = tmp_path_factory.mktemp("third_party")
    clip = tf.TensorSpec([1, *CLIP], tf.float32)

    def classifier(x):  # the clip's mean colour + BIAS: how pixels are normalized changes the winner
        return tf.reduce_mean(x, axis=[1, 2, 3]) + tf.constant(BIAS)

    made = {
        "clipnet": _convert(classifier, [clip]),
        "clipnet_int8": _convert(classifier, [clip], int8=True),
        "two_inputs": _convert(lambda a, b: tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
                               [tf.TensorSpec([1, 4, 3], tf.float32), tf.TensorSpec([1, 3], tf.int32)]),
        "dynamic": _convert(lambda x: tf.reduce_mean(x, axis=[1, 2]), [tf.TensorSpec([1, None, None, 3], tf.float32)]),
        "dynamic_batch": _convert(lambda x: tf.reduce_mean(x, axis=[1, 2]), [tf.TensorSpec([None, 8, 8, 3], tf.float32)]),
    }
    spec = {"precision": "float32", "form": "clip", "classes": list(CLASSES),
            "input": {"name": "x", "shape": [1, *CLIP], "dtype": "float32"}}
    made["clipnet_meta"] = embed_metadata(made["clipnet"], metadata_for(
        spec, {"clip": {"normalization": "unit", "frames": CLIP[0], "size": CLIP[1]}}))
    paths = {}
    for name, data in made.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(data)
    paths["corrupt"] = root / "corrupt.tflite"
    paths["corrupt"].write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)))
    paths["truncated"] = root / "truncated.tflite"
    paths["truncated"].write_bytes(made["clipnet"][:200])
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset artifact as `tfkit data` writes it (manifest + train/val .npz), of CLIP-shaped clips."""
    from tfkit.artifacts import Manifest
    from tfkit.types import ArtifactKind

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(2)
    for split, n in (("train", 12), ("val", 24)):
        colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)  # one colour per clip
        x = np.broadcast_to(colours[:, None, None, None, :], (n, *CLIP)).copy()
        # Labels are what the classifier says under "unit" pixels (the metadata's): the file with
        # metadata must score 1.0, the plain one (fed "symmetric", the dataset's) less.
        np.savez(root / f"{split}.npz", x=x, y=np.argmax(colours / 255.0 + BIAS, axis=1))
    clip = {"normalization": "symmetric", "frames": CLIP[0], "size": CLIP[1]}
    manifest = Manifest(ArtifactKind.DATASET, {"train": "train.npz", "val": "val.npz"},
                        {"classes": list(CLASSES), "clip": clip})
    (root / "manifest.json").write_text(manifest.to_json())
    return root


def host_accuracy(model_path, npz, pixel_scale: float, offset: float) -> float:
    """Top-1 of the model on the clips through the host interpreter, normalized as given."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    with np.load(npz) as data:
        x, y = data["x"], data["y"]
    predictions = []
    for clip in x:
        interpreter.set_tensor(inp["index"], (clip.astype(np.float32) * pixel_scale + offset)[None])
        interpreter.invoke()
        predictions.append(int(np.argmax(interpreter.get_tensor(out["index"]))))
    return float(np.mean(np.array(predictions) == y))


def test_bench_and_report_take_third_party_files(files, tmp_path):
    names = ("clipnet", "clipnet_int8", "two_inputs")
    ok(invoke("bench", *(files[n] for n in names), "--runs", 5, "--warmup", 1, "--out", tmp_path / "b", "-q"))
    got = results(tmp_path / "b")
    assert sorted(got) == sorted(names)
    for r in got.values():
        assert r["precision"] == "unknown" and r["accuracy"] is None and r["latency_ms"]["p50"] > 0
        assert (r["extra"]["input_source"], r["extra"]["source"], r["extra"]["tfkit_metadata"]) == ("random", "file", False)
        assert r["extra"]["parity"] is None
    assert [t["dtype"] for t in got["two_inputs"]["extra"]["inputs"]] == ["float32", "int32"]
    assert got["clipnet_int8"]["extra"]["inputs"][0]["dtype"] == "int8"
    bench_manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [d["path"] for d in bench_manifest["history"][-1]["inputs"]] == [str(files[n]) for n in names]

    ok(invoke("report", tmp_path / "b", "--out", tmp_path / "r", "-q"))  # the bench artifact of plain files
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [(a["name"], a["inputs"], a["parity"]) for a in doc["artifacts"]] == [(n, "random", None) for n in names]
    assert "| two_inputs | unknown |" in (tmp_path / "r" / "report.md").read_text()

    # report straight from a file: benchmarked with bench's defaults into OUT-bench first
    ok(invoke("report", files["clipnet"], "--out", tmp_path / "r2", "-q"))
    doc = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert [(a["name"], a["inputs"]) for a in doc["artifacts"]] == [("clipnet", "random")]
    assert results(tmp_path / "r2-bench")["clipnet"]["latency_ms"]["runs"] == 50


def test_plain_files_are_scored_on_real_clips_that_fit(files, dataset, tmp_path):
    """With --data: a file whose input takes the clips is scored (normalized by its own tfkit
    metadata when it has some, else the dataset's), one that does not is timed only."""
    ok(invoke("bench", files["clipnet"], files["clipnet_meta"], files["two_inputs"], "--data", dataset,
              "--runs", 3, "--warmup", 1, "--out", tmp_path / "b", "-q"))
    got = results(tmp_path / "b")
    plain, meta, other = got["clipnet"], got["clipnet_meta"], got["two_inputs"]
    assert (plain["extra"]["input_source"], meta["extra"]["input_source"], other["extra"]["input_source"]) == (
        "real clips", "real clips", "random")
    assert (plain["precision"], meta["precision"], meta["extra"]["tfkit_metadata"]) == ("unknown", "float32", True)
    assert plain["extra"]["eval"]["normalization"] == "symmetric" and meta["extra"]["eval"]["normalization"] == "unit"
    val = dataset / "val.npz"
    symmetric, unit = host_accuracy(files["clipnet"], val, 2 / 255, -1.0), host_accuracy(files["clipnet"], val, 1 / 255, 0.0)
    assert unit == 1.0 and symmetric < 0.9  # the two normalizations are told apart by accuracy
    assert plain["accuracy"] == pytest.approx(symmetric) and meta["accuracy"] == pytest.approx(unit)
    assert other["accuracy"] is None
    ok(invoke("report", tmp_path / "b", "--out", tmp_path / "r", "-q"))
    rows = {a["name"]: a["inputs"] for a in json.loads((tmp_path / "r" / "report.json").read_text())["artifacts"]}
    assert rows == {"clipnet": "real clips", "clipnet_meta": "real clips", "two_inputs": "random"}


def test_bad_files_and_arguments_end_in_one_line(files, tmp_path):
    usage_error(invoke("bench", files["corrupt"], "--out", tmp_path / "b"), "corrupt.tflite", "not a TFLite flatbuffer")
    r = invoke("bench", files["truncated"], "--out", tmp_path / "b")
    assert r.exit_code == 2 and "truncated.tflite" in r.stderr and "Traceback" not in r.output, r.output
    usage_error(invoke("bench", files["dynamic"], "--out", tmp_path / "b"), "dynamic dimensions at axes [1, 2]",
                "fixed input sizes")
    usage_error(invoke("bench", tmp_path, "--out", tmp_path / "b"), "no manifest.json", "pass a .tflite file")
    usage_error(invoke("report", files["corrupt"], "--out", tmp_path / "r"), "not a TFLite flatbuffer")
    # The input is checked before the missing --out, so a wrong path is what the user hears first.
    usage_error(invoke("bench", tmp_path / "nope.tflite"), "does not exist")
    usage_error(invoke("bench", files["clipnet"]), "Missing option '--out'")
    usage_error(invoke("report", files["clipnet"]), "Missing option '--out'")
    assert not (tmp_path / "b").exists()


def test_report_says_parity_ran_on_random_inputs(tmp_path, dataset):
    """A conversion without --data checks parity on random inputs; the report says so in its table
    (md, html, json) and notes, and keeps '>=' as typed in the Markdown."""
    from tfkit._compat.keras import keras

    K = keras()
    inp = K.Input(CLIP)
    model = K.Model(inp, K.layers.Dense(len(CLASSES))(K.layers.GlobalAveragePooling3D()(inp)))
    model.save(tmp_path / "user.keras")
    ok(invoke("import", tmp_path / "user.keras", "--out", tmp_path / "m", "-q"))
    ok(invoke("convert", tmp_path / "m", "--precision", "float32", "--parity-clips", 4, "--out", tmp_path / "rand", "-q"))
    ok(invoke("convert", tmp_path / "m", "--data", dataset, "--precision", "float32", "--parity-clips", 4,
              "--out", tmp_path / "real", "-q"))
    for folder, inputs in (("rand", "random"), ("real", "real clips")):
        record = json.loads((tmp_path / folder / "manifest.json").read_text())["history"][-1]
        assert record["metrics"]["parity_inputs"] == inputs
    ok(invoke("bench", tmp_path / "rand", "--runs", 3, "--warmup", 1, "--out", tmp_path / "b", "-q"))
    ok(invoke("report", tmp_path / "b", "--out", tmp_path / "r", "-q"))
    row = json.loads((tmp_path / "r" / "report.json").read_text())["artifacts"][0]
    assert row["inputs"] == "random" and row["parity"]["inputs"] == "random" and row["parity"]["clips"] == 4
    md = (tmp_path / "r" / "report.md").read_text()
    assert re.search(r"\| max\|dlogit\| \S+ <= \S+ on 4 random inputs \|", md.replace("\\|", "|")), md
    assert re.search(r"- \*\*parity float32\*\*: max\\\|dlogit\\\| \S+ <= \S+ on 4 random inputs", md), md
    assert "&lt;" not in md and "&gt;" not in md
    assert "on 4 random inputs</td>" in (tmp_path / "r" / "report.html").read_text()


def test_runner_refuses_dynamic_sizes_but_times_a_dynamic_batch_at_1(files, tmp_path):
    """The device-side rule (the runner runs tfkit artifacts on boards too, where no host check ran)."""
    import subprocess
    import sys

    from tfkit.bench.devices import runner_script

    def run(name):
        proc = subprocess.run([sys.executable, str(runner_script()), "--model", str(files[name]), "--runs", "2",
                               "--warmup", "0"], capture_output=True, text=True, check=False)
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])

    code, out = run("dynamic")
    assert (code, out["kind"]) == (1, "dynamic_input") and "axes [1, 2]" in out["error"]
    code, out = run("dynamic_batch")
    assert code == 0 and out["inputs"][0]["shape"] == [1, 8, 8, 3]
    ok(invoke("bench", files["dynamic_batch"], "--runs", 2, "--warmup", 0, "--out", tmp_path / "b", "-q"))
