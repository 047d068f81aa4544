"""`build`, `import` and `train` steps: a zoo spec or a user's model -> a Keras model -> a trained one.

Example:
    >>> run_step(BuildStep(VideoModelSpec(num_classes=7)), [], Path("out/02-build"))  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.data import ClipSet
from tfkit.errors import InputPathError, ModelFileError
from tfkit.models.spec import VideoModelSpec
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.train import TrainConfig
from tfkit.types import ArtifactKind

MODEL_FILE = "model.keras"


def load_model_and_clips(inputs):
    """[keras model artifact, dataset artifact] -> (model, train ClipSet, val ClipSet)."""
    from tfkit.models.io import load_model, trusted

    model_art, data_art = inputs
    return (load_model(model_art.file("model"), trust=trusted(model_art)), ClipSet.load_npz(data_art.file("train")),
            ClipSet.load_npz(data_art.file("val")))


def _versions() -> dict:
    from tfkit._compat.keras import versions

    return versions()


@STEPS.register("build")
class BuildStep(Step):
    """Build an untrained zoo model from a VideoModelSpec. No inputs."""

    name = "build"
    config: VideoModelSpec

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.models import build
        from tfkit.models.io import save_model

        model = build(self.config)
        save_model(model, workdir / MODEL_FILE)
        metrics = {"params": int(model.count_params())}
        return StepOutput(ArtifactKind.KERAS_MODEL, {"model": MODEL_FILE},
                          {"model": self.config.to_dict()}, metrics, _versions())


@STEPS.register("train")
class TrainStep(Step):
    """Train a Keras classifier on a dataset's clips. Inputs: [keras model, dataset]."""

    name = "train"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: TrainConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.models.io import save_model
        from tfkit.train import train_classifier

        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        result = train_classifier(model, train, val, self.config, progress=ctx.progress,
                                  symmetries=data_art.manifest.spec.get("symmetries"))
        ctx.log(f"[train] validation accuracy {result.val_accuracy:.3f} on {len(val.y)} clips")
        save_model(result.model, workdir / MODEL_FILE)
        spec = {**model_art.manifest.spec, "classes": data_art.manifest.spec["classes"],
                "clip": data_art.manifest.spec["clip"]}
        metrics = {"val_accuracy": result.val_accuracy, "train_accuracy": result.train_accuracy,
                   "val_clips": len(val.y), "history": result.history}
        return StepOutput(ArtifactKind.KERAS_MODEL, {"model": MODEL_FILE}, spec, metrics, _versions())


@dataclass(frozen=True)
class ImportConfig:
    """The `import` step's config: where the user's model is, whether its code is trusted, a name."""

    path: str
    trust: bool = False  # load Lambda layers and custom classes (their code runs): only for trusted files
    name: str | None = None  # defaults to the file (or folder) name without suffix

    def __post_init__(self):
        if not str(self.path):
            raise ModelFileError("the import step needs the path of a .keras/.h5 file or a SavedModel folder")
        object.__setattr__(self, "path", str(self.path))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def model_name(self) -> str:
        return self.name or Path(self.path).name.removesuffix(Path(self.path).suffix) or "model"


@STEPS.register("import")
class ImportStep(Step):
    """Bring a user's model in: a .keras/.h5 file or tf_keras SavedModel folder, checked for code
    before it is deserialized (tfkit.models.user), re-saved as a Keras artifact. No inputs."""

    name = "import"
    config: ImportConfig

    def extra_fingerprint(self) -> dict:
        from tfkit.models.user import source_sha256

        return {"source_sha256": source_sha256(self.config.path)}  # a changed file reruns the step

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.models.io import load_model, save_model
        from tfkit.models.user import open_user_model, source_sha256

        c: ImportConfig = self.config
        loaded = open_user_model(c.path, trust=c.trust)
        info = loaded.info
        save_model(loaded.model, workdir / MODEL_FILE)
        try:  # what later steps will do: fail here, not three steps on
            load_model(workdir / MODEL_FILE, trust=info.trusted)
        except InputPathError as e:
            raise ModelFileError(f"{c.path} loads, but its re-saved copy does not ({e}); custom classes must be "
                                 "registered with tf_keras.saving.register_keras_serializable") from e
        ctx.log(f"[import] {info.kind} model from {info.format.value}: input {list(info.input_shape)}, "
                f"outputs {[list(s) for s in info.output_shapes]}"
                + (" (trusted: its code runs on every load)" if info.trusted else ""))
        spec = {"user": True, "trusted": info.trusted, "name": c.model_name, "kind": info.kind,
                "format": info.format.value, "input_shape": list(info.input_shape),
                "output_shapes": [list(s) for s in info.output_shapes], "num_classes": info.output_shapes[0][-1]}
        metrics = {"params": int(loaded.model.count_params()), "source_sha256": source_sha256(c.path)}
        return StepOutput(ArtifactKind.KERAS_MODEL, {"model": MODEL_FILE}, spec, metrics, _versions())
