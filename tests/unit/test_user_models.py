"""Bring your own model: each format loads; code a file carries (Lambda, custom classes, foreign
modules) is refused, before it can run, unless trusted; Keras 3 and broken files get clear errors."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfkit.errors import ModelFileError


def K():
    from tfkit._compat.keras import keras

    return keras()


def image_model():
    """(N, 32, 32, 3) -> 3 logits."""
    k = K()
    x = inp = k.Input((32, 32, 3))
    x = k.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(3, name="logits")(x), name="tiny_image")


def video_model(classes: int = 3):
    """(N, 4, 32, 32, 3) -> `classes` logits, with a (1, 3, 3) Conv3D."""
    k = K()
    x = inp = k.Input((4, 32, 32, 3))
    x = k.layers.Conv3D(4, (1, 3, 3), activation="relu", name="conv3d")(x)
    x = k.layers.GlobalAveragePooling3D()(x)
    return k.Model(inp, k.layers.Dense(classes, name="logits")(x), name="tiny_video")


def lambda_model(marker: Path | None = None):
    """An image model whose Lambda 'double' doubles its input and, if `marker` is given, creates that
    file whenever its code runs (so a test can see whether loading ran it)."""
    k = K()
    x = inp = k.Input((32, 32, 3))
    x = k.layers.Conv2D(4, 3, name="conv")(x)
    if marker is None:
        x = k.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    else:
        x = k.layers.Lambda(lambda t, p=str(marker): (open(p, "w").close(), t * 2.0)[1], name="double")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(3)(x), name="with_lambda")


def custom_layer_class():
    class Scale(K().layers.Layer):
        def __init__(self, factor=2.0, **kw):
            super().__init__(**kw)
            self.factor = float(factor)

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return Scale


def save(model, path: Path) -> Path:
    if path.suffix:
        model.save(path)
    else:
        model.save(path, save_format="tf")
    return path


def sample(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (1, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("user_models")
    out = {}
    for kind, build in (("image", image_model), ("video", video_model)):
        m = build()
        out[kind, "model"] = m
        for fmt, name in (("keras", "m.keras"), ("h5", "m.h5"), ("saved_model", "m_sm")):
            out[kind, fmt] = save(m, d / f"{kind}_{name}")
    lam = lambda_model()
    for fmt, name in (("keras", "lam.keras"), ("h5", "lam.h5"), ("saved_model", "lam_sm")):
        out["lambda", fmt] = save(lam, d / name)
    out["dir"] = d
    return out


@pytest.mark.parametrize("kind,shape", [("image", (32, 32, 3)), ("video", (4, 32, 32, 3))])
@pytest.mark.parametrize("fmt", ["keras", "h5", "saved_model"])
def test_each_format_loads_with_what_it_is(files, kind, shape, fmt):
    from tfkit.models.user import open_user_model

    loaded = open_user_model(files[kind, fmt])
    info = loaded.info
    assert (info.format.value, info.kind, info.input_shape, info.output_shapes, info.trusted) == \
        (fmt, kind, (None, *shape), ((None, 3),), False)
    x = sample(shape)
    np.testing.assert_allclose(loaded.model(x).numpy(), files[kind, "model"](x).numpy(), atol=1e-5)


def test_in_memory_tf_keras_model_is_taken_as_is(files):
    from tfkit.models.user import UserModelFormat, open_user_model

    loaded = open_user_model(files["video", "model"])
    assert loaded.model is files["video", "model"]
    assert loaded.info.format is UserModelFormat.IN_MEMORY and loaded.info.kind == "video"


@pytest.mark.parametrize("fmt", ["keras", "h5", "saved_model"])
def test_lambda_is_refused_without_trust_and_loads_with_it(files, fmt):
    from tfkit.models.user import load_user_model, open_user_model

    with pytest.raises(ModelFileError, match=r"'double' \(Lambda\).*trust=True.*--trust-code"):
        load_user_model(files["lambda", fmt])
    loaded = open_user_model(files["lambda", fmt], trust=True)
    assert loaded.info.trusted and "Lambda" in [type(layer).__name__ for layer in loaded.model.layers]


def test_a_refused_lambda_never_runs_although_plain_tf_keras_would_run_it(tmp_path):
    """The reason for the check: tf_keras runs an .h5 Lambda's bytecode even with safe_mode=True."""
    from tfkit.models.user import load_user_model

    marker = tmp_path / "ran"
    save(lambda_model(marker), tmp_path / "evil.h5")
    marker.unlink()
    with pytest.raises(ModelFileError, match="double"):
        load_user_model(tmp_path / "evil.h5")
    assert not marker.exists()
    K().models.load_model(tmp_path / "evil.h5", compile=False, safe_mode=True)
    assert marker.exists()


def test_in_memory_lambda_needs_trust_too(files):
    """Its re-saved copy could only be reloaded with safe_mode off."""
    from tfkit.models.user import open_user_model

    model = K().models.load_model(files["lambda", "h5"], compile=False)
    with pytest.raises(ModelFileError, match="double"):
        open_user_model(model)
    assert open_user_model(model, trust=True).info.trusted


def test_custom_class_is_refused_then_needs_custom_objects(tmp_path):
    from tfkit.models.user import load_user_model

    Scale = custom_layer_class()
    k = K()
    inp = k.Input((32, 32, 3))
    x = k.layers.GlobalAveragePooling2D()(Scale(3.0, name="scale")(inp))
    path = save(k.Model(inp, k.layers.Dense(3)(x)), tmp_path / "custom.keras")
    with pytest.raises(ModelFileError, match=r"'scale' \(Scale from module.*trust=True.*custom_objects"):
        load_user_model(path)
    with pytest.raises(ModelFileError, match=r"'scale' \(Scale from module .*\) are not known; pass custom_objects"):
        load_user_model(path, trust=True)
    model = load_user_model(path, trust=True, custom_objects={"Scale": Scale})
    assert model.get_layer("scale").factor == 3.0


def test_a_config_naming_a_foreign_module_is_refused(files, tmp_path):
    """tf_keras imports a config's `module` and takes `registered_name` from it (CVE-2025-1550's
    pattern): a Dense whose module is `os` must not get that far."""
    from tfkit.models.user import load_user_model

    src, path = files["image", "keras"], tmp_path / "foreign.keras"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(path, "w") as out:
        for item in z.namelist():
            data = z.read(item)
            if item == "config.json":
                config = json.loads(data)
                dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
                dense.update(module="os", registered_name="system")
                data = json.dumps(config).encode()
            out.writestr(item, data)
    with pytest.raises(ModelFileError, match=r"'logits' \(Dense registered as system\)"):
        load_user_model(path)


def test_tfkit_zoo_models_pass_the_check_without_trust(tmp_path):
    from tfkit.models import build
    from tfkit.models.io import save_model
    from tfkit.models.spec import VideoModelSpec
    from tfkit.models.user import open_user_model

    spec = VideoModelSpec(alpha=0.35, stages=2, head_channels=16, frame_stack=True, frames=4, size=32)
    save_model(build(spec), tmp_path / "zoo.keras")
    assert open_user_model(tmp_path / "zoo.keras").info.kind == "video"


@pytest.fixture(scope="module")
def keras3_model():
    import keras

    assert keras.__version__.startswith("3.")
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    return keras.Model(inp, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_files_are_refused_with_the_tf_keras_message(keras3_model, tmp_path, suffix):
    from tfkit.models.user import load_user_model

    path = tmp_path / f"k3{suffix}"
    keras3_model.save(path)
    with pytest.raises(ModelFileError, match=r"Keras 3.*tf_keras \(Keras 2\).*TFMOT.*import tf_keras as keras"):
        load_user_model(path)


def test_keras3_marks_without_metadata_still_count(files, tmp_path):
    """A .keras without metadata.json whose config has Keras 3's modules (keras.src...)."""
    from tfkit.models.user import load_user_model

    path = tmp_path / "k3_nometa.keras"
    with zipfile.ZipFile(files["image", "keras"]) as z, zipfile.ZipFile(path, "w") as out:
        config = json.loads(z.read("config.json"))
        config["module"] = "keras.src.models.functional"
        out.writestr("config.json", json.dumps(config))
    with pytest.raises(ModelFileError, match="Keras 3"):
        load_user_model(path)


def test_keras3_model_object_is_refused(keras3_model):
    from tfkit.models.user import load_user_model

    with pytest.raises(ModelFileError, match=r"Keras 3 model.*tf_keras"):
        load_user_model(keras3_model)


def test_plain_saved_model_is_refused_with_what_to_do(tmp_path):
    from tfkit._compat.keras import tf
    from tfkit.models.user import load_user_model

    T = tf()
    module = T.Module()
    module.f = T.function(lambda x: x * 2.0, input_signature=[T.TensorSpec((None, 32, 32, 3), T.float32)])
    T.saved_model.save(module, str(tmp_path / "plain"))
    with pytest.raises(ModelFileError, match=r"plain TensorFlow SavedModel.*keras_metadata.pb.*from_saved_model"):
        load_user_model(tmp_path / "plain")


@pytest.mark.parametrize("name,content,needle", [
    ("junk.keras", b"random", "not a Keras .keras file"),
    ("junk.h5", b"random", "not an HDF5 Keras model file"),
    ("model.onnx", b"random", "unknown model file type '.onnx'"),
    ("missing.keras", None, "no model at"),
    ("folder", "dir", "without saved_model.pb"),
])
def test_unusable_paths_are_model_file_errors_naming_the_path(tmp_path, name, content, needle):
    from tfkit.models.user import load_user_model

    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(np.random.default_rng(0).bytes(2048) if content == b"random" else content)
    with pytest.raises(ModelFileError, match=needle) as e:
        load_user_model(path)
    assert str(path) in str(e.value)


def test_other_objects_and_input_shapes_are_refused():
    from tfkit.models.user import load_user_model

    with pytest.raises(ModelFileError, match="cannot load a model from a dict"):
        load_user_model({"not": "a model"})
    k = K()
    inp = k.Input((16, 3))
    with pytest.raises(ModelFileError, match=r"input shape \(None, 16, 3\)"):
        load_user_model(k.Model(inp, k.layers.Dense(2)(inp)))


def test_import_step_records_the_model_and_reruns_when_the_file_changes(files, tmp_path):
    from tfkit.artifacts import Artifact
    from tfkit.models.io import load_model
    from tfkit.steps import RunContext, run_step
    from tfkit.steps.model import ImportConfig, ImportStep

    logs = []
    ctx = RunContext(progress=False, log=logs.append)
    src = tmp_path / "user.h5"
    src.write_bytes(files["video", "h5"].read_bytes())
    art = run_step(ImportStep(ImportConfig(str(src))), [], tmp_path / "imported", ctx)
    spec = art.manifest.spec
    assert (spec["user"], spec["trusted"], spec["kind"], spec["input_shape"], spec["name"]) == \
        (True, False, "video", [None, 4, 32, 32, 3], "user")
    assert load_model(art.file("model")).input_shape == (None, 4, 32, 32, 3)
    run_step(ImportStep(ImportConfig(str(src))), [], tmp_path / "imported", ctx)
    assert "[import] unchanged" in logs[-1]
    src.write_bytes(files["image", "h5"].read_bytes())
    again = run_step(ImportStep(ImportConfig(str(src))), [], tmp_path / "imported", ctx)
    assert Artifact.load(again.path).manifest.spec["kind"] == "image"


def test_trusted_lambda_survives_the_resave_and_later_loads_honour_the_trust(files, tmp_path):
    from tfkit.errors import InputPathError
    from tfkit.models.io import load_model, trusted
    from tfkit.steps import RunContext, run_step
    from tfkit.steps.model import ImportConfig, ImportStep

    ctx = RunContext(progress=False, log=lambda m: None)
    with pytest.raises(ModelFileError, match="double"):
        run_step(ImportStep(ImportConfig(str(files["lambda", "h5"]))), [], tmp_path / "no", ctx)
    art = run_step(ImportStep(ImportConfig(str(files["lambda", "h5"]), trust=True)), [], tmp_path / "yes", ctx)
    assert trusted(art)
    with pytest.raises(InputPathError, match="Lambda"):
        load_model(art.file("model"))  # the default stays safe
    x = sample((32, 32, 3))
    ref = K().models.load_model(files["lambda", "h5"], compile=False)(x).numpy()
    np.testing.assert_allclose(load_model(art.file("model"), trust=True)(x).numpy(), ref, atol=1e-5)
