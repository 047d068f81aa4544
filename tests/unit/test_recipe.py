"""Recipes are checked before anything runs: every mistake names the file, line, field path and the
allowed values. The shipped recipes (converters/) all pass, and README's table is generated from them."""
from pathlib import Path

import pytest
import yaml

from tfkit.cli.run import README_BEGIN, README_END, parse_overrides, readme_table, write_readme_table
from tfkit.errors import RecipeError
from tfkit.recipe import TARGETS, check_recipe, load_recipe, recipe_table, zoo_names

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "converters").glob("*.yaml"))

TINY = """\
description: tiny recipe for tests
model: tsm_mobilenet_v2
steps:
  - step: data
    with: {frames: 4, size: 32, videos_per_class: 4, video_frames: 12, video_size: 40, val_fraction: 0.25}
  - step: build
    with: {alpha: 0.35, stages: 2, head_channels: 32}
  - step: train
    inputs: [build, data]
    with: {epochs: 2, batch_size: 8}
  - step: convert
    inputs: [train, data]
    with: {precision: float32}
"""


def write(tmp_path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, **kw) -> str:
    with pytest.raises(RecipeError) as e:
        load_recipe(path, **kw)
    return str(e.value)


def test_tiny_recipe_is_checked_and_takes_shapes_from_the_data(tmp_path):
    recipe = load_recipe(write(tmp_path, TINY))
    assert recipe.name == "tiny" and recipe.out == Path("out/tiny") and recipe.target is None
    assert [s.id for s in recipe.steps] == ["data", "build", "train", "convert"]
    build = recipe.step("build")
    assert build.derived == {"frames": 4, "size": 32} and build.classes_from == "data"
    spec = build.make_config(num_classes=3)
    assert (spec.num_classes, spec.input_shape, spec.alpha) == (3, (4, 32, 32, 3), 0.35)
    assert recipe.step("train").make_config().normalization.value == "symmetric"
    assert recipe.step("train").inputs == ("build", "data")


@pytest.mark.parametrize("old,new,needles", [
    ("description:", "decription:", ["tiny.yaml:1:", "decription", "Did you mean 'description'", "Allowed:"]),
    ("  - step: train\n", "  - step: train\n    input: [build]\n",
     ["tiny.yaml:9:", "steps[2].input:", "Did you mean 'inputs'", "id, inputs, step, with"]),
    ("precision: float32", "precison: float32",
     ["tiny.yaml:13:", "steps[3].with.precison:", "Did you mean 'precision'", "calibration_clips"]),
    ("precision: float32", "precision: int7",
     ["steps[3].with.precision:", "Unknown precision 'int7'", "int8", "float16", "dynamic"]),
    ("step: convert", "step: convrt", ["steps[3].step:", "Did you mean 'convert'", "bench"]),
    ("inputs: [build, data]", "inputs: [build, convert]",
     ["steps[2].inputs[1]:", "'convert' is this step or a later one"]),
    ("inputs: [build, data]", "inputs: [bild, data]", ["steps[2].inputs[0]:", "Did you mean 'build'"]),
    ("inputs: [train, data]", "inputs: [data, train]",
     ["steps[3].inputs:", "convert takes [keras_model, dataset]", "got [data (dataset), train (keras_model)]"]),
    ("{alpha: 0.35,", "{frames: 8, alpha: 0.35,", ["steps[2].inputs:", "clip shapes", "[8, 32, 32, 3]",
                                                  "[4, 32, 32, 3]"]),
    ("{epochs: 2,", "{epochs: two,", ["steps[2].with.epochs:", "expects int, got 'two'"]),
    ("{frames: 4,", "{frames: 4, normalization: symetric,", ["Did you mean 'symmetric'", "unit"]),
    ("precision: float32", "precision: float32, form: stream", ["steps[3].with.form:", "causal"]),
    ("model: tsm_mobilenet_v2", "model: tsm_mobilenet_v3", ["steps[1].with.family:", "builds 'tsm_mobilenet_v2'"]),
    ("model: tsm_mobilenet_v2", "model: tsm_mobilenet_v4", ["model:", "Did you mean", "2plus1d_efficientnet_lite"]),
    ("model: tsm_mobilenet_v2", "model: tsm_mobilenet_v2\ntarget: cpu-int9",
     ["target:", "Did you mean 'cpu-int8'", "gpu-fp16", "edgetpu-int8"]),
    ("model: tsm_mobilenet_v2", "model: tsm_mobilenet_v2\ntarget: cpu-int8",
     ["target:", "cpu-int8 runs int8 models", "float32"]),
    ("  - step: build\n", "  - id: data\n    step: build\n", ["steps[1].id:", "already the id"]),
    ("{frames: 4,", "{source: no/such/folder, frames: 4,", ["steps[0].with.source:", "no folder"]),
])
def test_mistakes_name_file_field_and_allowed_values(tmp_path, old, new, needles):
    assert old in TINY
    message = error_of(write(tmp_path, TINY.replace(old, new, 1)))
    assert message.startswith(str(tmp_path / "tiny.yaml")), message
    for needle in needles:
        assert needle in message, message


def test_stream_form_needs_a_causal_model_and_no_bench(tmp_path):
    causal = TINY.replace("head_channels: 32}", "head_channels: 32, causal: true}").replace(
        "precision: float32", "precision: int8, form: stream")
    assert load_recipe(write(tmp_path, causal)).values("convert", "form") == ["stream"]
    benched = causal + "  - step: bench\n    inputs: [data, convert]\n"
    message = error_of(write(tmp_path, benched))
    assert "steps[4].inputs[1]: 'convert' is a stream-form model" in message and "clip-form" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    message = error_of(write(tmp_path, TINY.replace("[train, data]", "[train, data")))
    assert "tiny.yaml:" in message and "invalid YAML" in message
    line = int(message.split("tiny.yaml:")[1].split(":")[0])
    assert 12 <= line <= 13, message


@pytest.mark.parametrize("text,needle", [
    ("- data\n- build\n", "a recipe is a mapping"),
    ("", "empty file"),
    ("description: x\nmodel: tsm_mobilenet_v2\n", "steps: missing"),
    ("description: x\nmodel: tsm_mobilenet_v2\nsteps: []\n", "non-empty list"),
    ("description: a\ndescription: b\nmodel: tsm_mobilenet_v2\nsteps: []\n", "tiny.yaml:2: description: duplicate"),
    ("description: x\nmodel: tsm_mobilenet_v2\nsteps:\n  - step: build\n", "give num_classes, frames, size"),
])
def test_malformed_files(tmp_path, text, needle):
    assert needle in error_of(write(tmp_path, text))


def test_model_is_a_zoo_name_only_where_a_step_builds_one(tmp_path):
    data_only = "description: x\nmodel: my_own_model\nsteps:\n  - step: data\n"
    assert load_recipe(write(tmp_path, data_only)).model == "my_own_model"


def test_overrides_are_applied_and_checked_like_the_file(tmp_path):
    path = write(tmp_path, TINY)
    overrides = parse_overrides(["train.epochs=1", "convert.parity_clips=8", "train.learning_rate=1e-3"])
    assert overrides == {"train.epochs": 1, "convert.parity_clips": 8, "train.learning_rate": "1e-3"}
    recipe = load_recipe(path, overrides=overrides)
    assert recipe.step("train").make_config().epochs == 1
    assert recipe.step("train").make_config().learning_rate == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as text
    assert recipe.step("convert").config == {"precision": "float32", "parity_clips": 8}
    message = error_of(path, overrides={"convert.precison": "int8"})
    assert "steps[3].with.precison (from --set convert.precison='int8')" in message and "precision" in message
    assert "Did you mean 'train'" in error_of(path, overrides={"trian.epochs": 1})
    assert "train.epochs must be >= 1, got 0" in error_of(path, overrides={"train.epochs": 0})
    with pytest.raises(RecipeError, match="STEP_ID.FIELD=VALUE"):
        parse_overrides(["epochs=1"])
    # a Recipe object rechecked with overrides gives the same result as loading with them
    again = check_recipe(load_recipe(path).to_dict(), source=path, overrides=overrides)
    assert again.steps == recipe.steps


def test_plan_lists_every_step_and_what_the_data_decides(tmp_path):
    plan = "\n".join(load_recipe(write(tmp_path, TINY)).plan(Path("o")))
    for needle in ("o/01-data", "o/04-convert", "train <- build, data", "frames=4 (from data)",
                   "num_classes=<classes of data>", "precision=float32"):
        assert needle in plan, plan


def test_recipe_table_and_readme_markers(tmp_path):
    folder = tmp_path / "converters"
    folder.mkdir()
    write(folder, TINY.replace("tiny recipe for tests", "tiny | piped"), "a.yaml")
    table = recipe_table(folder)
    assert table.splitlines()[0] == "| recipe | model | target | precision | form | delegate | description |"
    assert "| [a.yaml](converters/a.yaml) | tsm_mobilenet_v2 | - | float32 | clip | - | tiny \\| piped |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{README_BEGIN}\nold\n{README_END}\nrest\n")
    assert write_readme_table(readme, folder) and not write_readme_table(readme, folder)
    assert readme_table(readme.read_text()) == table and readme.read_text().endswith(f"{README_END}\nrest\n")


# --- the shipped recipes (these need every step they use registered, `check` included) -----------


def test_every_zoo_model_and_target_has_a_recipe():
    names = {p.stem for p in SHIPPED}
    assert names == {f"{m}_{t}" for m in zoo_names() for t in TARGETS.names()}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_recipe_fits_its_model_and_target(path):
    recipe = load_recipe(path)
    target = TARGETS.get(recipe.target)
    assert path.stem == f"{recipe.model}_{recipe.target}" and recipe.description
    assert recipe.values("convert", "precision") == [target.precision]
    assert recipe.values("check", "delegate") == [target.delegate]
    assert yaml.safe_load(path.read_text())["steps"][0]["step"] == "data"


def test_readme_table_is_generated_from_the_recipes():
    readme = (ROOT / "README.md").read_text()
    assert readme_table(readme) == recipe_table(ROOT / "converters"), (
        "README.md's recipe table is stale: regenerate it with `tfkit recipes --write-readme README.md`")


def test_an_imported_model_converts_and_checks_without_a_dataset(tmp_path):
    """import -> convert (no dataset: random calibration) -> check; the step's own `accepts` decides."""
    recipe = load_recipe(write(tmp_path, """\
description: a user's model to int8, checked for the GPU
model: my_model
steps:
  - step: import
    with: {path: my_model.keras}
  - step: convert
    inputs: [import]
    with: {precision: int8}
  - step: check
    inputs: [convert]
    with: {delegate: gpu}
"""))
    assert [s.id for s in recipe.steps] == ["import", "convert", "check"]
    with pytest.raises(RecipeError, match=r"check takes \[tflite_model\]"):
        load_recipe(write(tmp_path, """\
description: check fed a Keras model
model: my_model
steps:
  - step: import
    with: {path: my_model.keras}
  - step: check
    inputs: [import]
""", "bad.yaml"))


@pytest.mark.parametrize("override,expected", [
    ({"train.epochs": -3}, "steps[2].with.epochs (from --set train.epochs=-3): train.epochs must be >= 1, got -3"),
    ({"train.batch_size": 0}, "train.batch_size must be >= 1, got 0"),
    ({"train.learning_rate": 0.0}, "train.learning_rate must be > 0, got 0.0"),
    ({"data.frames": 0}, "clip frames must be >= 1, got 0"),
])
def test_a_bad_value_names_its_field_not_the_config_repr(tmp_path, override, expected):
    message = error_of(write(tmp_path, TINY), overrides=override)
    assert expected in message
    assert "Config(" not in message and "ClipSpec(" not in message


def test_load_recipe_takes_a_shipped_name_as_a_wheel_user_would():
    from tfkit.errors import UnknownNameError
    from tfkit.recipe.check import load_recipe
    from tfkit.recipe.shipped import shipped_recipe_folder

    recipe = load_recipe("tsm_mobilenet_v2_cpu-int8", overrides={"train.epochs": 1})
    assert Path(recipe.source).resolve() == (shipped_recipe_folder() / "tsm_mobilenet_v2_cpu-int8.yaml").resolve()
    with pytest.raises(UnknownNameError, match="tsm_mobilenet_v2_cpu-int8"):
        load_recipe("no_such_recipe")
