"""`tfkit run RECIPE` and `tfkit recipes` through click's CliRunner: a tiny recipe end to end with
--set and a rerun that reuses every step; mistakes end in one `error: FILE:LINE: FIELD: ...` line."""
import json
import subprocess
import sys

from click.testing import CliRunner

from tfkit.cli.main import cli
from tfkit.cli.run import README_BEGIN, README_END
from tfkit.recipe import recipe_table

# The suite's tiny settings (tests/conftest.py TINY): 4 frames of 32 px, few short videos per class.
TINY = """\
description: tiny recipe for the CLI tests
model: tsm_mobilenet_v2
steps:
  - step: data
    with: {frames: 4, size: 32, stride: 2, videos_per_class: 4, video_frames: 12, video_size: 40,
           val_fraction: 0.25}
  - step: build
    with: {alpha: 0.35, stages: 2, head_channels: 32, frame_stack: true}
  - step: train
    inputs: [build, data]
    with: {epochs: 3, batch_size: 8}
  - id: f32
    step: convert
    inputs: [train, data]
    with: {precision: float32, calibration_clips: 8, parity_clips: 8}
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tiny(tmp_path, text=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_tiny_recipe_then_rerun_reuses_every_step(tmp_path):
    from tfkit.artifacts import Artifact

    recipe, out = tiny(tmp_path), tmp_path / "out"
    first = invoke("run", recipe, "--out", out, "--set", "train.epochs=1", "--quiet")
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == ["01-data", "02-build", "03-train", "04-f32"]
    assert first.stdout.splitlines()[-1] == f"f32: {out / '04-f32'}"
    train = Artifact.load(out / "03-train")
    assert train.manifest.history[-1].config["epochs"] == 1  # from --set, not the file's 3
    built = Artifact.load(out / "02-build").manifest.spec["model"]
    classes = Artifact.load(out / "01-data").manifest.spec["classes"]
    assert (built["num_classes"], built["frames"], built["size"]) == (len(classes), 4, 32)  # from the data
    tflite = Artifact.load(out / "04-f32")
    assert tflite.kind.value == "tflite_model" and tflite.manifest.spec["precision"] == "float32"
    assert json.loads((out / "04-f32" / "manifest.json").read_text())["spec"]["input"]["shape"] == [1, 4, 32, 32, 3]

    again = invoke("run", recipe, "--out", out, "--set", "train.epochs=1", "--quiet")
    assert again.exit_code == 0, again.output
    assert again.stdout.count("(unchanged, reused)") == 4, again.output


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    result = invoke("run", tiny(tmp_path), "--out", tmp_path / "o", "--dry-run", "--set", "f32.precision=float16")
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    for needle in ("01-data data <- -", "04-f32 convert <- train, data precision=float16", "frames=4 (from data)"):
        assert needle in words, result.stdout
    assert not (tmp_path / "o").exists()


def test_dry_run_imports_no_tensorflow(tmp_path):
    code = ("import sys; from click.testing import CliRunner; from tfkit.cli.main import cli; "
            f"r = CliRunner().invoke(cli, ['run', {str(tiny(tmp_path))!r}, '--dry-run']); "
            "assert r.exit_code == 0, r.output; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_mistakes_are_one_line_exit_2(tmp_path):
    recipe = tiny(tmp_path, TINY.replace("precision: float32", "precison: float32"), "typo.yaml")
    for args, needles in [
        ([recipe], [f"error: {recipe}:15: steps[3].with.precison:", "Did you mean 'precision'"]),
        ([tiny(tmp_path), "--set", "f32.precision=int7"], ["steps[3].with.precision (from --set", "int8"]),
        ([tiny(tmp_path), "--set", "epochs=1"], ["STEP_ID.FIELD=VALUE"]),
        (["tsm_mobilenet_v2_cpu_int8"], ["Unknown recipe", "Did you mean 'tsm_mobilenet_v2_cpu-int8'"]),
        ([tmp_path / "nope.yaml"], ["no such recipe file", "tfkit recipes"]),
    ]:
        result = invoke("run", *args, "--out", tmp_path / "o")
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        for needle in needles:
            assert needle in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_recipes_prints_and_writes_the_table(tmp_path):
    folder = tmp_path / "converters"
    folder.mkdir()
    tiny(folder)
    printed = invoke("recipes", folder)
    assert printed.exit_code == 0 and printed.stdout == recipe_table(folder)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\n{README_END}\n")
    assert "table updated" in invoke("recipes", folder, "--write-readme", readme).stdout
    assert "already up to date" in invoke("recipes", folder, "--write-readme", readme).stdout
    assert recipe_table(folder) in readme.read_text()


def test_a_checkout_reads_its_recipes_from_converters_in_place(tmp_path, monkeypatch):
    # an editable install has no packaged copy: converters/ itself, wherever the command runs from
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    converters = Path(__file__).resolve().parents[2] / "converters"
    assert invoke("recipes", "--path").stdout.strip() == str(converters)
    plan = invoke("run", "tsm_mobilenet_v2_cpu-int8", "--dry-run", "--out", tmp_path / "o")
    assert plan.exit_code == 0 and plan.stdout.startswith("recipe tsm_mobilenet_v2_cpu-int8 (model tsm_mobilenet_v2,")


def test_a_tfkit_without_its_recipes_says_so_in_one_line(tmp_path, monkeypatch):
    from tfkit.recipe import shipped

    monkeypatch.setattr(shipped, "recipe_folders", lambda: (tmp_path / "_recipes", tmp_path / "converters"))
    for args in (["recipes"], ["recipes", "--path"], ["run", "tsm_mobilenet_v2_cpu-int8", "--dry-run"]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "installed without" in result.stderr
