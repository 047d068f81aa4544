"""Compression steps: a trained Keras model (+ its dataset for fine-tuning) -> a compressed Keras
model, with accuracy and the technique's own figures (per-layer sparsity...) before and after.

Example:
    >>> run_step(PruneStep(PruneConfig(sparsity=0.5)), [model_art, data_art], Path("out/04-prune"))  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from tfkit.optimize.prune import PruneConfig
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.steps.model import MODEL_FILE, _versions, load_model_and_clips
from tfkit.types import ArtifactKind


@STEPS.register("prune")
class PruneStep(Step):
    """TFMOT magnitude pruning with fine-tuning. Inputs: [keras model, dataset]."""

    name = "prune"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: PruneConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.models.io import save_model
        from tfkit.optimize.prune import kernel_sparsity, prune_magnitude
        from tfkit.train import evaluate_accuracy
        from tfkit.types import Normalization

        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        norm = Normalization(data_art.manifest.spec["clip"]["normalization"])
        before = evaluate_accuracy(model, val.x, val.y, norm)
        c: PruneConfig = self.config
        target = c.m_by_n or f"{c.sparsity:.0%}"
        ctx.log(f"[prune] pruning to {target} ({c.schedule}, {c.epochs} epochs of fine-tuning)")
        result = prune_magnitude(model, train, val, c, progress=ctx.progress,
                                 symmetries=data_art.manifest.spec.get("symmetries"))
        ctx.log(f"[prune] kernel sparsity {result.sparsity['overall']:.2f} over {len(result.pruned_layers)} layers; "
                f"validation accuracy {before:.3f} -> {result.val_accuracy:.3f}")
        save_model(result.model, workdir / MODEL_FILE)
        metrics = {"val_accuracy": result.val_accuracy, "val_accuracy_before": before,
                   "train_accuracy": result.train_accuracy, "sparsity": result.sparsity,
                   "sparsity_before": kernel_sparsity(model, result.pruned_layers)["overall"],
                   "pruned_layers": result.pruned_layers, "params": int(result.model.count_params())}
        if result.xnnpack_sparse_check:
            metrics["xnnpack_sparse_check"] = result.xnnpack_sparse_check
        return StepOutput(ArtifactKind.KERAS_MODEL, {"model": MODEL_FILE}, model_art.manifest.spec, metrics,
                          _versions())
