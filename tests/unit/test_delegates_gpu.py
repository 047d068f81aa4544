"""Delegate verdicts against the real delegates: custom ops per delegate, NNAPI's partition limit,
partitions by data dependency, and the GPU verdict measured by LiteRT's own GPU accelerator
(on SwiftShader's Vulkan where no GPU is present). Each rule is tripped by a model built for it
(tests/unit/delegate_models.py).

The measured tests need a Vulkan driver (`apt-get install chromium` gives SwiftShader). Locally
they skip without one; with CI=true a missing part fails the build, never skips silently."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.unit import delegate_models as dm
from tfkit.delegates import CheckOptions, check_bytes, check_file
from tfkit.delegates.gpu_measured import find_vulkan, parse_gpu_log

STATIC = CheckOptions(measure=False)
LOGS = Path(__file__).resolve().parents[1] / "data" / "gpu_logs"


def require(present: bool, what: str) -> None:
    """Skip locally when a part of the machine is missing; under CI (CI=true) fail instead."""
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing on this CI machine: .ci/run installs it (apt-get install chromium)")
    pytest.skip(f"{what} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def vulkan():
    setup = find_vulkan()
    require(setup is not None, "a Vulkan driver for LiteRT's GPU accelerator (SwiftShader)")
    return setup


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    return {name: getattr(dm, name)() for name in ("transpose_conv_bias_segmenter", "unknown_custom_op_model",
                                                   "sparse_weights_model", "clip_model_5d", "image_segmenter")}


def _row(cov, op: str, delegated: bool):
    return next(r for r in cov.ops if r.op == op and r.delegated is delegated)


# --- custom ops are per delegate, as data ---------------------------------------------------------
def test_known_custom_ops_run_on_gpu_and_xnnpack_but_not_nnapi(models):
    fb = models["transpose_conv_bias_segmenter"]
    gpu, xnn, nnapi = check_bytes(fb, ["gpu", "xnnpack", "nnapi"], options=STATIC)
    assert gpu.verdict == "full", gpu.ops  # "no stock delegate runs custom ops" was false
    assert xnn.measured and xnn.verdict == "full"  # what this host's XNNPACK took
    (xnn_rules,) = [c for c in check_bytes(dm.unknown_custom_op_model(), ["xnnpack"]) if not c.measured]
    assert "custom op 'MyVendorOp'" in _row(xnn_rules, "CUSTOM:MyVendorOp", False).reason
    assert "custom op 'Convolution2DTransposeBias'" in _row(nnapi, "CUSTOM:Convolution2DTransposeBias", False).reason


def test_an_unknown_custom_op_means_the_model_does_not_load(models):
    (gpu,) = check_bytes(models["unknown_custom_op_model"], ["gpu"], options=STATIC)
    assert gpu.verdict == "none" and all("stock LiteRT has no kernel" in r.reason for r in gpu.ops)


# --- partitions as TFLite forms them ----------------------------------------------------------------
def test_a_constant_only_op_does_not_split_a_partition(models):
    from tfkit.delegates import get_delegate
    from tfkit.delegates.graph import TfliteGraph, partition

    graph = TfliteGraph.from_flatbuffer(models["sparse_weights_model"])
    assert [op.name for op in graph.ops].count("DENSIFY") == 2
    drift = get_delegate("gpu")
    drift.backend = "ml_drift"
    decisions = drift.decide(graph)
    on_gpu = {d.index for d in decisions if d.delegated}
    assert [p.delegated for p in partition(graph, on_gpu)] == [False, True]  # DENSIFYs first, then one run
    assert on_gpu == {op.index for op in graph.ops if op.name != "DENSIFY"}
    (classic,) = check_bytes(models["sparse_weights_model"], ["gpu"], options=STATIC)
    assert classic.verdict == "full" and any("ML Drift" in n and "DENSIFY x2" in n for n in classic.notes)


def _alternating_model() -> bytes:
    """Convolutions in runs of 1, 2, 3 and 4, split by GELU (which NNAPI has no mapping for)."""
    from tfkit._compat.keras import keras

    K = keras()
    x = y = K.Input(batch_shape=(1, 8, 8, 4))
    for run in (1, 2, 3, 4):
        for _ in range(run):
            y = K.layers.Conv2D(4, 1)(y)
        if run < 4:
            y = K.layers.Activation("gelu")(y)
    return dm._convert(K.Model(x, y))


def test_nnapi_delegates_only_its_three_largest_partitions():
    fb = _alternating_model()
    (limited,) = check_bytes(fb, ["nnapi"], options=STATIC)
    (free,) = check_bytes(fb, ["nnapi"], options=CheckOptions(measure=False, nnapi_max_partitions=0))
    assert free.partitions == 4 and _row(free, "CONV_2D", True).count == 10
    assert limited.partitions == 3 and _row(limited, "CONV_2D", True).count == 9  # runs of 4, 3, 2 kept
    assert "3 largest NNAPI partitions" in _row(limited, "CONV_2D", False).reason
    assert _row(limited, "CONV_2D", False).example == "op #0"  # the run of one, first in the graph


# --- the accelerator's log, parsed (saved real logs) -----------------------------------------------
def test_gpu_log_parser_on_saved_real_logs():
    part = parse_gpu_log((LOGS / "clip_model_5d.log").read_text())
    assert (part.gpu_ops, part.cpu_ops) == (1, 4) and "SwiftShader" in part.adapter
    assert ("MEAN", "Unknown layout.") in part.refused
    assert sum(op == "RESHAPE" and "must be less than 5" in m for op, m in part.refused) == 2
    sparse = parse_gpu_log((LOGS / "sparse_weights_model.log").read_text())
    assert sparse.refused == (("DENSIFY", "Operation is not supported."),) and (sparse.gpu_ops, sparse.cpu_ops) == (4, 2)
    full = parse_gpu_log((LOGS / "img.log").read_text())
    assert full.refused == () and full.gpu_ops is None and full.failures == ()
    custom = parse_gpu_log((LOGS / "unknown_custom_op_model.log").read_text())
    assert any("unresolved custom op: MyVendorOp" in f for f in custom.failures)
    none = parse_gpu_log((LOGS / "no_vulkan_loader.log").read_text())
    assert none.adapter is None and any("No adapters found" in f for f in none.failures)


def test_find_vulkan_honours_the_user_then_known_paths(tmp_path, monkeypatch):
    icd = tmp_path / "my_icd.json"
    icd.write_text("{}")
    assert find_vulkan({"VK_ICD_FILENAMES": str(icd)}, candidates=()).origin == "VK_ICD_FILENAMES"
    assert find_vulkan({}, candidates=()) is None
    assert find_vulkan({"VK_ICD_FILENAMES": str(tmp_path / "gone.json")}, candidates=(str(icd),)).icd == str(icd)


def test_without_vulkan_the_gpu_verdict_is_static_and_says_how_to_measure(models, monkeypatch):
    from tfkit.delegates import gpu_measured

    monkeypatch.delenv("VK_ICD_FILENAMES", raising=False)
    monkeypatch.setattr(gpu_measured, "SWIFTSHADER_ICDS", ())
    (gpu,) = check_bytes(models["clip_model_5d"], ["gpu"])
    assert not gpu.measured and gpu.source.startswith("static") and "OpenCL" in gpu.backend
    assert any("apt-get install chromium" in n for n in gpu.notes)


# --- measured by the real accelerator --------------------------------------------------------------
def test_measured_gpu_verdicts_match_the_rules_for_that_backend(models, vulkan):
    verdicts = {}
    for name, fb in models.items():
        (cov,) = check_bytes(fb, ["gpu"])
        assert cov.measured and "GPU accelerator" in cov.source and "WebGPU" in cov.backend, name
        assert cov.disagreements == (), (name, cov.disagreements)
        verdicts[name] = (cov.verdict, cov.ops_delegated, cov.ops_total)
    assert verdicts["transpose_conv_bias_segmenter"] == ("full", 2, 2)
    assert verdicts["unknown_custom_op_model"][:2] == ("none", 0)
    assert verdicts["sparse_weights_model"] == ("partial", 4, 6)
    assert verdicts["clip_model_5d"] == ("partial", 1, 5)


def test_measured_disagreement_is_reported(models, vulkan):
    """Static rules that miss what the delegate refuses are named, op by op: drop DENSIFY's ML Drift
    rule and the sparse model's measured verdict must list it."""
    from tfkit.delegates import gpu

    fb = models["sparse_weights_model"]
    saved = dict(gpu.ML_DRIFT_REFUSES)
    try:
        gpu.ML_DRIFT_REFUSES.clear()
        (cov,) = check_bytes(fb, ["gpu"])
    finally:
        gpu.ML_DRIFT_REFUSES.update(saved)
    assert cov.measured and any(d.startswith("DENSIFY x2: static rules say GPU") for d in cov.disagreements)


def test_cli_check_gpu_json_says_measured(tmp_path, models, vulkan):
    from click.testing import CliRunner

    from tfkit.cli.main import cli

    path = tmp_path / "clip.tflite"
    path.write_bytes(models["clip_model_5d"])
    res = CliRunner().invoke(cli, ["check", str(path), "--delegate", "gpu", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["measured"] is True and payload["source"].startswith("measured:") and payload["disagreements"] == []
    assert {"RESHAPE", "MEAN"} <= {r["op"] for r in payload["ops"] if not r["delegated"]}
    static = json.loads(CliRunner().invoke(cli, ["check", str(path), "-d", "gpu", "--json", "--static"]).output)
    assert static["measured"] is False and static["ops_delegated"] == payload["ops_delegated"]
    (isolated,) = check_file(path, ["gpu"])  # the file path: read in a child, measured in its own child
    assert isolated.measured and isolated.ops_delegated == 1


def test_gpu_parity_against_the_cpu_on_clips(tmp_path, models, vulkan):
    from tfkit.delegates.gpu_measured import parity_on_clips

    path = tmp_path / "clip.tflite"
    path.write_bytes(models["clip_model_5d"])
    clips = np.random.default_rng(0).uniform(-1, 1, (4, 4, 16, 16, 3)).astype(np.float32)
    parity = parity_on_clips(path, clips, setup=vulkan)
    assert parity["clips"] == 4 and "SwiftShader" in parity["device"]
    assert 0.0 <= parity["max_abs_logit_diff"] < 0.05  # float16 (or float32) on the GPU, float32 on the CPU
    if "SwiftShader" in parity["device"]:  # measured: no float16 shaders there, so float32 differences (~1e-7)
        assert parity["gpu_arithmetic"].startswith("float32") and parity["max_rel_logit_diff"] < 1e-5
    assert 0.0 <= parity["top1_agreement"] <= 1.0
    wrong = parity_on_clips(path, clips[:, :2], setup=vulkan)  # clips that do not fit the input
    assert "error" in wrong


def test_cli_gpu_parity_on_the_datasets_real_clips(tiny_demo, vulkan):
    """`tfkit check MODEL --delegate gpu --data DATA`: the trained tiny model's float16 GPU run
    against the CPU on the dataset's validation clips."""
    from click.testing import CliRunner

    from tfkit.cli.main import cli

    model, data = tiny_demo.artifacts["convert-float32"].path, tiny_demo.artifacts["data"].path
    res = CliRunner().invoke(cli, ["check", str(model), "-d", "gpu", "--data", str(data), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    parity = payload["gpu_parity"]
    assert payload["measured"] and parity["clips"] >= 1, parity
    assert parity["max_abs_logit_diff"] < 0.1 and parity["top1_agreement"] >= 0.75, parity
    text = CliRunner().invoke(cli, ["check", str(model), "-d", "gpu", "--data", str(data)])
    assert "GPU parity on" in text.output and "(measured)" in text.output
