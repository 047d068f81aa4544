import json

import pytest

from tfkit.artifacts import Artifact, FileDigest, Manifest, sha256_file, staged_dir
from tfkit.errors import InputPathError, UnknownNameError, UsageError
from tfkit.registry import Registry
from tfkit.steps.base import RunContext, Step, StepOutput, run_step
from tfkit.types import ArtifactKind

QUIET = RunContext(progress=False, log=lambda m: None)


def test_registry_suggests_close_names():
    reg = Registry("model")
    reg.register("tsm_mobilenet_v2")(object())
    with pytest.raises(UnknownNameError, match="Did you mean 'tsm_mobilenet_v2'"):
        reg.get("tsm_mobilenet")
    with pytest.raises(ValueError):
        reg.register("tsm_mobilenet_v2")(object())


def test_staged_dir_is_atomic(tmp_path):
    final = tmp_path / "01-step"
    with staged_dir(final) as stage:
        (stage / "a.txt").write_text("one")
    assert (final / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), staged_dir(final) as stage:
        (stage / "a.txt").write_text("two")
        raise RuntimeError("step failed")
    assert (final / "a.txt").read_text() == "one"  # the old result survives a failed rerun
    assert (tmp_path / "01-step.failed" / "a.txt").read_text() == "two"  # kept for inspection
    assert oct(final.stat().st_mode & 0o777) != oct(0o700)


class CountingStep(Step):
    name = "count"
    calls = 0

    def run(self, inputs, workdir, ctx):
        type(self).calls += 1
        (workdir / "out.txt").write_text(json.dumps(self.config))
        return StepOutput(ArtifactKind.DATASET, {"out": "out.txt"}, {"n": self.config["n"]}, {"m": 1})


class Consumer(Step):
    name = "consume"
    input_kinds = (ArtifactKind.DATASET,)

    def run(self, inputs, workdir, ctx):
        (workdir / "copy.txt").write_text(inputs[0].file("out").read_text() + "!")
        return StepOutput(ArtifactKind.REPORT, {"copy": "copy.txt"})


def test_run_step_records_history_and_skips_unchanged(tmp_path):
    CountingStep.calls = 0
    a = run_step(CountingStep({"n": 1}), [], tmp_path / "01", QUIET)
    b = run_step(Consumer(), [a], tmp_path / "02", QUIET)
    rec = b.manifest.history[-1]
    assert [r.step for r in b.manifest.history] == ["count", "consume"]
    assert rec.inputs[0].sha256 == sha256_file(a.file("out"))
    assert rec.outputs[0] == FileDigest.of(b.file("copy"), b.path)
    assert "python" in rec.tool_versions and "numpy" in rec.tool_versions
    reloaded = Artifact.load(tmp_path / "02")
    assert reloaded.manifest == b.manifest

    run_step(CountingStep({"n": 1}), [], tmp_path / "01", QUIET)
    assert CountingStep.calls == 1  # same config, same inputs: skipped
    run_step(CountingStep({"n": 2}), [], tmp_path / "01", QUIET)
    assert CountingStep.calls == 2  # config changed: rerun
    # An input edited by hand invalidates the consumer's cache.
    before = Artifact.load(tmp_path / "02").manifest.cache_key
    c = run_step(Consumer(), [Artifact.load(tmp_path / "01")], tmp_path / "02", QUIET)
    assert c.manifest.cache_key != before and c.file("copy").read_text().endswith('2}!')


def test_step_checks_input_kinds(tmp_path):
    a = run_step(CountingStep({"n": 1}), [], tmp_path / "01", QUIET)
    b = run_step(Consumer(), [a], tmp_path / "02", QUIET)
    with pytest.raises(UsageError, match="takes"):
        run_step(Consumer(), [b], tmp_path / "03", QUIET)


def test_bad_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(InputPathError, match="not a tfkit artifact"):
        Artifact.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputPathError, match="not a valid tfkit manifest"):
        Artifact.load(tmp_path)


def test_manifest_round_trip():
    m = Manifest(ArtifactKind.TFLITE_MODEL, {"model": "model.tflite"}, {"precision": "int8"})
    assert Manifest.from_json(m.to_json()) == m


class FailingStep(Step):
    name = "fails"

    def run(self, inputs, workdir, ctx):
        ctx.log("[fails] measured half of it")
        ctx.record({"val_accuracy": 0.25})
        (workdir / "partial.npz").write_bytes(b"half")
        raise UsageError("the data ran out")


def test_a_failed_step_keeps_its_log_config_and_measurements(tmp_path):
    logs = []
    out = tmp_path / "03-fails"
    with pytest.raises(UsageError) as caught:
        run_step(FailingStep({"epochs": 2}), [], out, RunContext(progress=False, log=logs.append))
    failed = tmp_path / "03-fails.failed"
    assert str(failed) in "\n".join(caught.value.__notes__)
    assert logs == ["[fails] -> " + str(out), "[fails] measured half of it"]  # the user's log still gets them
    log = (failed / "step.log").read_text()
    assert "[fails] measured half of it" in log and "the data ran out" in log and "Traceback" in log
    assert json.loads((failed / "config.json").read_text())["config"] == {"epochs": 2}
    assert json.loads((failed / "metrics.json").read_text()) == {"val_accuracy": 0.25}
    assert (failed / "partial.npz").read_bytes() == b"half"
    assert not out.exists() and not list(tmp_path.glob(".03-fails.staging-*"))
