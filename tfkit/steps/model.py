"""`build` and `train` steps: a zoo spec -> an untrained Keras model -> a trained one.

Example:
    >>> run_step(BuildStep(VideoModelSpec(num_classes=7)), [], Path("out/02-build"))  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from tfkit.data import ClipSet
from tfkit.models.spec import VideoModelSpec
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.train import TrainConfig
from tfkit.types import ArtifactKind

MODEL_FILE = "model.keras"


def load_model_and_clips(inputs):
    """[keras model artifact, dataset artifact] -> (model, train ClipSet, val ClipSet)."""
    from tfkit.models.io import load_model

    model_art, data_art = inputs
    return (load_model(model_art.file("model")), ClipSet.load_npz(data_art.file("train")),
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
