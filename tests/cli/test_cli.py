"""Every command through click's CliRunner: bad input ends in one actionable line and exit 2."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfkit.cli.main import COMMANDS, cli

TINY_DATA = ["--frames", "4", "--size", "32", "--videos-per-class", "3", "--video-frames", "10",
             "--video-size", "40", "--val-fraction", "0.34"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


def test_help_lists_every_command():
    out = invoke("--help").output
    assert all(name in out for name in COMMANDS)


def test_convert_help_explains_the_int8_choices_from_the_config_fields():
    """The help text is the config field's (ConvertConfig.rounding/repair metadata), not a CLI copy."""
    from dataclasses import fields

    from tfkit.steps.convert import ConvertConfig

    out = " ".join(invoke("convert", "--help").output.split())
    documented = {f.name: " ".join(f.metadata["help"].split()) for f in fields(ConvertConfig) if "help" in f.metadata}
    assert {"rounding", "repair", "repair_budget"} <= set(documented)
    assert all(text in out for text in documented.values())
    assert "optimized | nearest" in out and "off | auto" in out


def test_list_shows_registries():
    out = invoke("list").output
    assert "mobilenet_v3" in out and "efficientnet_lite" in out and "int8" in out and "local" in out
    assert invoke("list", "precisions").output.count("\n") == 6


def test_list_shows_whole_descriptions_wrapped_on_a_terminal():
    from tfkit.cli.listing import _tables, lines

    steps = _tables()["steps"]
    convert = dict(steps)["convert"]
    assert convert.endswith(".") and "Inputs: [keras model, dataset]," in convert  # not cut at the line end
    piped = invoke("list", "steps").output
    assert all(f"  {item:<20} {text}" in piped for item, text in steps)
    wrapped = lines(steps, 60)
    assert all(len(line) <= 60 for entry in wrapped for line in entry.splitlines())
    assert [" ".join(entry.split()[1:]) for entry in wrapped] == [" ".join(text.split()) for _, text in steps]


@pytest.mark.parametrize("args,needles", [
    (["build", "--model", "tsm_mobilenetv2", "--out", "{tmp}/m"], ["Unknown model", "Did you mean"]),
    (["build", "--size", "30", "--out", "{tmp}/m"], ["model spec size must be >= 32 and a multiple of 4, got 30"]),
    (["data", "--source", "{tmp}/nope", "--out", "{tmp}/d"], ["does not exist"]),
    (["data", "--source", "{tmp}/empty", "--out", "{tmp}/d"], ["empty"]),
    (["data", "--source", "{tmp}/notes.txt", "--out", "{tmp}/d"], ["notes.txt"]),
    (["data", "--val-fraction", "1.5", "--out", "{tmp}/d"], ["val_fraction"]),
    (["convert", "{tmp}/nope", "--data", "{tmp}/nope", "--precision", "int9", "--out", "{tmp}/c"],
     ["Unknown precision", "int8"]),
    (["convert", "{tmp}/nope", "--data", "{tmp}/nope", "--out", "{tmp}/c"], ["does not exist", "tfkit build"]),
    (["train", "{tmp}/empty", "--data", "{tmp}/empty", "--out", "{tmp}/t"], ["not a tfkit artifact"]),
    (["bench", "{tmp}/empty", "--data", "{tmp}/empty", "--device", "phone", "--out", "{tmp}/b"], ["Unknown device"]),
    (["report", "{tmp}/nope", "--out", "{tmp}/r"], ["does not exist"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, needles):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a folder of videos")
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert_usage_error(result, *needles)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists() and not (tmp_path / "m").exists()


def test_user_folder_with_one_unreadable_video(tmp_path):
    """Readable videos are used; the unreadable one is named; the run succeeds."""
    from tfkit.data import generate_motion_dataset

    root = generate_motion_dataset(tmp_path / "videos", videos_per_class=3, frames=10, size=40, progress=False)
    (root / "dataset.json").unlink()
    bad = root / "left" / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    result = invoke("data", "--source", root, "--frames", 4, "--size", 32, "--val-fraction", 0.34,
                    "--out", tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert "broken.mp4" in result.stderr
    from tfkit.artifacts import Artifact

    art = Artifact.load(tmp_path / "d")
    assert art.metrics["train_clips"] + art.metrics["val_clips"] == 21
    assert [s["path"].endswith("broken.mp4") for s in art.metrics["skipped"]] == [True]


def test_single_steps_chain(tmp_path, tiny_data):
    """build -> train -> convert -> bench -> report, each a separate command, on the tiny dataset."""
    d = tiny_data.path
    assert invoke("build", "--classes", 7, "--frames", 4, "--size", 32, "--depth", 0.34,
                  "--out", tmp_path / "m", "-q").exit_code == 0
    r = invoke("train", tmp_path / "m", "--data", d, "--epochs", 1, "--batch-size", 8, "--out", tmp_path / "t", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("convert", tmp_path / "t", "--data", d, "--precision", "float32", "--out", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    # Wrong artifact kind is a clear usage error, not a crash.
    assert_usage_error(invoke("bench", tmp_path / "t", "--data", d, "--out", tmp_path / "b"), "keras_model")
    r = invoke("bench", tmp_path / "c", "--data", d, "--runs", 3, "--warmup", 1, "--out", tmp_path / "b", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("report", tmp_path / "b", "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [a["precision"] for a in doc["artifacts"]] == ["float32"]
    history = json.loads((tmp_path / "r" / "manifest.json").read_text())["history"]
    assert [h["step"] for h in history] == ["data", "build", "train", "convert", "bench", "report"]


def test_streaming_conversion_records_the_state_layout(tmp_path, tiny_data, tiny_trained):
    """`--form stream` needs a causal model (clear usage error otherwise) and records every state
    tensor with its quantization in the artifact."""
    d = tiny_data.path
    r = invoke("convert", tiny_trained.path, "--data", d, "--form", "stream", "--out", tmp_path / "no")
    assert_usage_error(r, "causal")
    assert invoke("build", "--classes", 7, "--frames", 4, "--size", 32, "--stages", 2, "--head-channels", 16,
                  "--frame-stack", "--causal", "--out", tmp_path / "m", "-q").exit_code == 0
    assert invoke("train", tmp_path / "m", "--data", d, "--epochs", 1, "--out", tmp_path / "t", "-q").exit_code == 0
    r = invoke("convert", tmp_path / "t", "--data", d, "--form", "stream", "--precision", "int8",
               # a 1-epoch model on 7 clips has near-uniform logits whose argmax int8 rounding flips: the bar is
               # lowered because this test checks the state layout; tests/cli/test_learning.py holds int8 to it
               "--calibration-clips", 8, "--parity-clips", 8, "--min-top1-agreement", 0.0,
               "--out", tmp_path / "s", "-q")
    assert r.exit_code == 0, r.output
    spec = json.loads((tmp_path / "s" / "manifest.json").read_text())["spec"]
    assert spec["form"] == "stream" and spec["input"]["shape"] == [1, 32, 32, 3]
    states = spec["stream"]["states"]
    assert {s["kind"] for s in states} == {"shift", "window", "count"}
    assert all(s["quantization"]["dtype"] == "int8" for s in states)


def test_int8_with_qat_and_with_layers_kept_float(tmp_path, learned):
    """`--qat-epochs` fine-tunes with TFMOT before converting; `--keep-float N` keeps the N worst
    layers (QuantizationDebugger) in float. Both record what they did and pass int8's default
    parity bar (on a model that has learned: `learned`); bad combinations are usage errors
    before any work."""
    d, trained = learned["data"].path, learned["train"]
    assert_usage_error(invoke("convert", trained.path, "--data", d, "--qat-epochs", 1, "--out", tmp_path / "x"),
                       "int8")
    assert_usage_error(invoke("convert", trained.path, "--data", d, "--precision", "int8", "--qat-epochs", 1,
                              "--keep-float", 1, "--out", tmp_path / "x"), "not both")
    common = ["--data", d, "--precision", "int8", "--calibration-clips", 16, "--parity-clips", 32, "-q"]
    r = invoke("convert", trained.path, *common, "--qat-epochs", 1, "--out", tmp_path / "q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "q" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert m["qat"]["epochs"] == 1 and m["qat"]["layers"]["wrapped"] > 10
    assert m["float_activation_tensors"] == 0
    r = invoke("convert", trained.path, *common, "--keep-float", 1, "--out", tmp_path / "k")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "k" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert len(m["selective"]["kept_float"]) == 1
    assert m["selective"]["selective"]["float_activations"] > m["selective"]["full_int8"]["float_activations"]


def test_prune_then_sparse_int8(tmp_path, learned):
    """`tfkit prune` fine-tunes to the target sparsity and records it; its zeros survive `convert
    --precision int8`, and the gzip size is recorded; every int8 file passes int8's default parity
    bar (on a model that has learned: `learned`). A ratio outside (0, 1) is refused first."""
    d, trained = learned["data"].path, learned["train"]
    r = invoke("prune", trained.path, "--data", d, "--sparsity", 1.5, "--out", tmp_path / "x")
    assert_usage_error(r, "sparsity must be in (0, 1), got 1.5")
    assert not (tmp_path / "x").exists()
    r = invoke("prune", trained.path, "--data", d, "--sparsity", 0.5, "--schedule", "constant", "--depthwise",
               "--epochs", 1, "--batch-size", 8, "--frequency", 1, "--out", tmp_path / "p", "-q")
    assert r.exit_code == 0, r.output
    history = json.loads((tmp_path / "p" / "manifest.json").read_text())["history"]
    m = history[-1]["metrics"]
    assert history[-1]["step"] == "prune" and 0.45 <= m["sparsity"]["overall"] <= 0.55
    assert any(name.endswith("_dw") for name in m["sparsity"]["layers"])  # --depthwise: TFMOT skips them
    assert m["sparsity_before"] < 0.01 and "val_accuracy_before" in m
    r = invoke("convert", tmp_path / "p", "--data", d, "--precision", "int8", "--calibration-clips", 8,
               "--parity-clips", 32, "--out", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "c" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert 0 < metrics["gzip_bytes"] < metrics["size_bytes"]
    # One scale per kernel instead of one per output channel: fewer incompressible float32 scales.
    assert_usage_error(invoke("convert", tmp_path / "p", "--data", d, "--no-per-channel", "--out", tmp_path / "y"),
                       "per_channel=False (--no-per-channel) applies to calibrated precisions")
    r = invoke("convert", tmp_path / "p", "--data", d, "--precision", "int8", "--no-per-channel",
               "--calibration-clips", 16, "--parity-clips", 32, "--out", tmp_path / "t", "-q")
    assert r.exit_code == 0, r.output
    per_tensor = json.loads((tmp_path / "t" / "manifest.json").read_text())["history"][-1]
    assert per_tensor["config"]["per_channel"] is False
    assert per_tensor["metrics"]["gzip_bytes"] < metrics["gzip_bytes"]
    # BN folded, then the pruned kernels clustered with their zeros kept: smaller again per tensor
    r = invoke("cluster", tmp_path / "p", "--data", d, "--clusters", 8, "--fold-batchnorm", "--preserve-sparsity",
               "--epochs", 1, "--batch-size", 8, "--out", tmp_path / "k", "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "k" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert len(m["folded_batchnorm"]) >= 8 and m["unique_values"]["max"] <= 8
    r = invoke("convert", tmp_path / "k", "--data", d, "--precision", "int8", "--no-per-channel", "--strip-names",
               "--calibration-clips", 16, "--parity-clips", 32, "--out", tmp_path / "kc", "-q")
    assert r.exit_code == 0, r.output
    packed = json.loads((tmp_path / "kc" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert packed["gzip_bytes"] < per_tensor["metrics"]["gzip_bytes"] and packed["stripped_name_bytes"] > 1000
    r = invoke("bench", tmp_path / "kc", "--data", d, "--runs", 3, "--warmup", 1, "--out", tmp_path / "kb", "-q")  # stripped: still runs
    assert r.exit_code == 0, r.output


def test_structured_then_convert_and_the_other_compressors(tmp_path, tiny_data, tiny_trained):
    """`tfkit structured` times blocks, removes what it chose plus channels, distills, and records
    params/MACs before and after; the result converts. `distill` runs as a step too."""
    d = tiny_data.path
    r = invoke("structured", tiny_trained.path, "--data", d, "--ratio", 1.5, "--out", tmp_path / "x")
    assert_usage_error(r, "channel ratio must be in [0, 1)")
    r = invoke("structured", tiny_trained.path, "--data", d, "--ratio", 0.5, "--max-blocks", 1, "--epochs", 1,
               "--timing-runs", 10, "--timing-rounds", 1, "--precision", "int8",
               "--batch-size", 8, "--out", tmp_path / "s", "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert m["params"] < m["params_before"] and m["macs"] > 0
    # blocks timed in int8, and the result timed in both precisions before and after
    assert set(m["latency_ms"]) == {"float32", "int8"} and m["latency_ms"]["int8"]["before"] == m["model_latency_ms"]
    assert all(v > 0 for side in m["latency_ms"].values() for v in side.values())
    assert len(m["removed_blocks"]) <= 1 and all(s["fixed_ms"] >= 0 for s in m["latency_split"])
    # the projection of the single-block stage 0 feeds stage 1's expansion: merged (fewer MACs, no timing
    # needed), and the converted file below still matches the Keras model on the parity clips
    assert "s1b0_expand_conv" in {p["second"] for p in m["merged_pairs"]}
    assert all(p["macs_merged"] > 0 for p in m["merged_pairs"]) and isinstance(m["merge_timings_ms"], dict)
    r = invoke("convert", tmp_path / "s", "--data", d, "--precision", "float32", "--parity-clips", 4,
               "--out", tmp_path / "c", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("distill", tmp_path / "s", "--teacher", tiny_trained.path, "--data", d, "--epochs", 1,
               "--batch-size", 8, "--out", tmp_path / "d", "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert 0.0 <= m["val_accuracy"] <= 1.0 and "teacher_val_accuracy" in m


def test_lowrank_by_macs_and_by_measured_latency(tmp_path, tiny_data, tiny_trained, monkeypatch):
    """`tfkit lowrank --macs-budget` factorizes by counting; `--latency-budget` times each layer
    alone on this host and records what it measured, for what it factorized and what it left.
    The host is a scripted device here (tests/scripted_timing.py: a cost per op and per MAC), so
    both outcomes, layers factorized and layers kept, happen on every host."""
    from tests.scripted_timing import ScriptedDevice

    monkeypatch.setattr("tfkit.bench.devices.local.LocalDevice", lambda: ScriptedDevice(per_op_ms=0.01))
    d = tiny_data.path
    r = invoke("lowrank", tiny_trained.path, "--data", d, "--macs-budget", 0.5, "--latency-budget", 0.5,
               "--out", tmp_path / "x")
    assert_usage_error(r, "choose one of macs_budget=0.5 and latency_budget=0.5")
    r = invoke("lowrank", tiny_trained.path, "--data", d, "--macs-budget", 0.5, "--min-channels", 8, "--round-to", 2,
               "--out", tmp_path / "m", "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert m["layers"] and all("latency_ms" not in info for info in m["layers"].values())
    r = invoke("lowrank", tiny_trained.path, "--data", d, "--latency-budget", 0.9, "--min-channels", 8, "--round-to", 2,
               "--timing-rounds", 1, "--max-candidates", 2, "--out", tmp_path / "t", "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())["history"][-1]["metrics"]
    kept = {name: why for name, why in m["skipped"].items() if "latency_budget" in why}
    assert m["layers"] and kept, (m["layers"], m["skipped"])  # e.g. s1b0_expand_conv (8 -> 48) pays, head_conv not
    for info in m["layers"].values():
        t = info["latency_ms"]
        assert t["factorized"] == t["by_rank"][str(info["rank"])] <= 0.9 * t["original"]
        assert int(info["rank"]) == max(int(r) for r, ms in t["by_rank"].items() if ms <= 0.9 * t["original"])
    assert all("ms as it is" in why and "(rank 2, float32)" in why for why in kept.values())
