"""The tiny end-to-end run: every step's artifact, manifest history, report contract, reruns."""
import json

import numpy as np
import pytest

from tfkit.artifacts import Artifact, sha256_file

STEPS_IN_ORDER = ["data", "build", "train", "convert", "convert", "bench", "report"]


def test_every_step_wrote_an_artifact(tiny_demo):
    names = sorted(p.name for p in tiny_demo.out.iterdir() if p.is_dir())
    assert names == ["01-data", "02-build", "03-train", "04-convert-float32", "05-convert-int8", "06-bench",
                     "07-report"]
    assert not [p for p in tiny_demo.out.rglob("*") if ".staging-" in p.name or p.name.endswith(".failed")]


def test_manifest_history_and_hashes(tiny_demo):
    report = Artifact.load(tiny_demo.report)
    assert [r.step for r in report.manifest.history] == STEPS_IN_ORDER
    for label, art in tiny_demo.artifacts.items():
        rec = Artifact.load(art.path).manifest.history[-1]
        for out in rec.outputs:
            assert sha256_file(art.path / out.path) == out.sha256, (label, out.path)
        assert rec.config is not None and rec.tool_versions["tfkit"]
    train = tiny_demo.artifacts["train"].manifest.history[-1]
    assert 0.0 <= train.metrics["val_accuracy"] <= 1.0
    assert "tensorflow" in train.tool_versions and "tf_keras" in train.tool_versions
    conv = tiny_demo.artifacts["convert-int8"].metrics
    assert conv["parity"]["passed"] and conv["float_activation_tensors"] == 0


def test_report_contract(tiny_demo):
    doc = json.loads((tiny_demo.out / "report.json").read_text())
    rows = {r["precision"]: r for r in doc["artifacts"]}
    assert set(rows) == {"float32", "int8"}
    for r in rows.values():
        for key in ("name", "precision", "size_bytes", "accuracy", "init_ms", "first_inference_ms", "peak_rss_mb"):
            assert r[key] is not None, key
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert 0 <= r["accuracy"] <= 1
        # The runner's own peak: this test process holds TensorFlow (~1 GB), which Linux would
        # hand down through fork+exec if the runner read ru_maxrss.
        assert 10 < r["peak_rss_mb"] < 400
    assert rows["int8"]["size_bytes"] < rows["float32"]["size_bytes"]
    sizes = {a.manifest.spec["precision"]: a.file("model").stat().st_size
             for k, a in tiny_demo.artifacts.items() if k.startswith("convert")}
    assert rows["float32"]["size_bytes"] == sizes["float32"]
    for name in ("report.md", "report.html", "latency_accuracy.png"):
        assert (tiny_demo.out / name).stat().st_size > 100


def test_tflite_accuracy_is_measured_through_the_interpreter(tiny_demo):
    """The bench accuracy equals what the host interpreter gives on the same validation clips."""
    from tfkit.convert.parity import TFLiteModel
    from tfkit.data import ClipSet, normalize

    val = ClipSet.load_npz(tiny_demo.artifacts["data"].file("val"))
    art = tiny_demo.artifacts["convert-float32"]
    tfl = TFLiteModel(art.file("model").read_bytes())
    preds = [int(np.argmax(tfl(normalize(x, "symmetric")[None]))) for x in val.x]
    expected = float(np.mean(np.array(preds) == val.y))
    doc = json.loads((tiny_demo.out / "report.json").read_text())
    got = next(r["accuracy"] for r in doc["artifacts"] if r["precision"] == "float32")
    assert got == pytest.approx(expected)


def test_rerun_skips_unchanged_steps(tiny_demo, tiny_demo_config):
    from tfkit.pipeline import demo

    before = {k: a.manifest.history[-1].started_at for k, a in tiny_demo.artifacts.items()}
    from tfkit.steps.base import RunContext

    logs = []
    again = demo(tiny_demo.out, tiny_demo_config, RunContext(progress=False, log=logs.append))
    after = {k: a.manifest.history[-1].started_at for k, a in again.artifacts.items()}
    assert before == after
    assert all("unchanged" in line for line in logs)



def test_conversion_records_ops_partitions_and_gpu_check(tiny_demo):
    for label in ("convert-float32", "convert-int8"):
        m = tiny_demo.artifacts[label].metrics
        assert m["ops"] and not any(op.startswith("Flex") for op in m["ops"])
        assert m["xnnpack_partitions"] >= 1
        assert m["gpu_analyzer"]["compatible"] is True
