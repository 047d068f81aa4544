"""Compression steps: a trained Keras model (+ its dataset for fine-tuning) -> a compressed Keras
model, with accuracy and the technique's own figures (per-layer sparsity...) before and after.

Example:
    >>> run_step(PruneStep(PruneConfig(sparsity=0.5)), [model_art, data_art], Path("out/04-prune"))  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from tfkit.optimize.cluster import ClusterConfig
from tfkit.optimize.distill import DistillConfig
from tfkit.optimize.lowrank import LowRankConfig
from tfkit.optimize.prune import PruneConfig
from tfkit.optimize.structured import StructuredConfig
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
        from tfkit.optimize.prune import kernel_sparsity, prune_magnitude

        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        before = _before(model, data_art, val)
        c: PruneConfig = self.config
        target = c.m_by_n or f"{c.sparsity:.0%}"
        ctx.log(f"[prune] pruning to {target} ({c.schedule}, {c.epochs} epochs of fine-tuning)")
        result = prune_magnitude(model, train, val, c, progress=ctx.progress,
                                 symmetries=data_art.manifest.spec.get("symmetries"))
        ctx.log(f"[prune] kernel sparsity {result.sparsity['overall']:.2f} over {len(result.pruned_layers)} layers; "
                f"validation accuracy {before:.3f} -> {result.val_accuracy:.3f}")
        metrics = {"val_accuracy": result.val_accuracy, "train_accuracy": result.train_accuracy,
                   "sparsity": result.sparsity,
                   "sparsity_before": kernel_sparsity(model, result.pruned_layers)["overall"],
                   "pruned_layers": result.pruned_layers}
        if result.xnnpack_sparse_check:
            metrics["xnnpack_sparse_check"] = result.xnnpack_sparse_check
        return _compressed(model_art, before, result.model, metrics, workdir)


def _compressed(model_art, before: float, model, metrics: dict, workdir: Path, spec=None) -> StepOutput:
    """Save a compressed model with accuracy, params and MACs before/after beside the technique's own figures."""
    from tfkit.models.io import save_model
    from tfkit.optimize.cost import count_macs

    save_model(model, workdir / MODEL_FILE)
    metrics = {"val_accuracy_before": before, **metrics, "params": int(model.count_params()),
               "macs": count_macs(model)}
    return StepOutput(ArtifactKind.KERAS_MODEL, {"model": MODEL_FILE},
                      model_art.manifest.spec if spec is None else spec, metrics, _versions())


def _before(model, data_art, val) -> float:
    from tfkit.train import data_normalization, evaluate_accuracy

    return evaluate_accuracy(model, val.x, val.y,
                             data_normalization(val, data_art.manifest.spec["clip"]["normalization"]))


@STEPS.register("structured")
class StructuredStep(Step):
    """Residual-block removal timed on the target device (`device`, this host by default) + channel
    removal + distillation. Inputs: [keras model, dataset]."""

    name = "structured"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: StructuredConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.bench.timing import device_record, timing_device
        from tfkit.optimize.structured import structured_prune

        device = timing_device(self.config.device)  # a device that cannot be opened fails before any work
        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        ctx.log(f"[structured] timing on {self.config.device}")
        result = structured_prune(model, train, val, self.config, device=device, progress=ctx.progress,
                                  symmetries=data_art.manifest.spec.get("symmetries"), log=ctx.log)
        ctx.log(f"[structured] removed blocks {list(result.removed_blocks)}; validation accuracy "
                f"{result.val_accuracy_before:.3f} -> {result.val_accuracy:.3f}")
        # the spec no longer rebuilds this model: keep it as the origin, marked as pruned
        spec = {**model_art.manifest.spec, "structured_pruned": True}
        return _compressed(model_art, result.val_accuracy_before, result.model, {
            "val_accuracy": result.val_accuracy, "removed_blocks": list(result.removed_blocks),
            "block_candidates": result.block_candidates, "latency_split": result.latency_split,
            "channel_groups": result.channel_groups, "model_latency_ms": result.model_latency_ms,
            "params_before": int(model.count_params()), "latency_ms": result.latency_ms,
            "merged_pairs": list(result.merged_pairs), "merge_timings_ms": result.merge_timings_ms,
            "notes": result.notes, "device": device_record(self.config.device)}, workdir, spec)


@STEPS.register("cluster")
class ClusterStep(Step):
    """Weight clustering (TFMOT) with fine-tuning. Inputs: [keras model, dataset]."""

    name = "cluster"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: ClusterConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.optimize.cluster import cluster_weights

        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        before = _before(model, data_art, val)
        ctx.log(f"[cluster] {self.config.clusters} clusters per kernel, {self.config.epochs} epochs of fine-tuning")
        result = cluster_weights(model, train, val, self.config, progress=ctx.progress,
                                 symmetries=data_art.manifest.spec.get("symmetries"))
        ctx.log(f"[cluster] validation accuracy {before:.3f} -> {result.val_accuracy:.3f}")
        return _compressed(model_art, before, result.model, {
            "val_accuracy": result.val_accuracy, "clustered_layers": result.clustered_layers,
            "unique_values": result.unique_values, "folded_batchnorm": [list(p) for p in result.folded]}, workdir)


@STEPS.register("lowrank")
class LowRankStep(Step):
    """SVD factorization of Dense and 1x1 convolutions, then a short fine-tune. Inputs: [keras model, dataset]."""

    name = "lowrank"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: LowRankConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.optimize.lowrank import factorize
        from tfkit.train import TrainConfig, data_normalization, train_classifier

        timing, measured = {}, {}
        if self.config.latency_budget:  # a device that cannot be opened fails before any work
            from tfkit.bench.timing import device_record, timing_device

            timing["device"], measured["device"] = timing_device(self.config.device), device_record(self.config.device)
        model_art, data_art = inputs
        model, train, val = load_model_and_clips(inputs)
        before = _before(model, data_art, val)
        if self.config.latency_budget:  # each layer is timed alone on the device on real activations
            from tfkit.data import normalize

            norm = data_normalization(val, data_art.manifest.spec["clip"]["normalization"])
            timing.update(sample=normalize(val.x[:1], norm), calibration=normalize(train.x[:4], norm))
            ctx.log(f"[lowrank] timing each eligible layer alone in {self.config.precision} on {self.config.device}")
        result = factorize(model, self.config, **timing)
        ctx.log(f"[lowrank] {len(result.layers)} layers factorized; params {result.params_before} -> "
                f"{result.params_after}; fine-tuning 2 epochs")
        if self.config.latency_budget:  # what the timing decided against is worth seeing
            for name, why in result.skipped.items():
                ctx.log(f"[lowrank] {name} left as it is: {why}")
        # The data's normalization comes with the clips (tfkit.train.data_normalization).
        tuned = train_classifier(result.model, train, val, TrainConfig(epochs=2, learning_rate=3e-4,
                                                                        seed=self.config.seed),
                                 progress=ctx.progress, symmetries=data_art.manifest.spec.get("symmetries"))
        return _compressed(model_art, before, tuned.model, {
            "val_accuracy": tuned.val_accuracy, "layers": result.layers, "skipped": result.skipped,
            "params_before": result.params_before, **measured}, workdir, {**model_art.manifest.spec, "low_rank": True})


@STEPS.register("distill")
class DistillStep(Step):
    """Knowledge distillation. Inputs: [student keras model, teacher keras model, dataset]."""

    name = "distill"
    input_kinds = (ArtifactKind.KERAS_MODEL, ArtifactKind.KERAS_MODEL, ArtifactKind.DATASET)
    config: DistillConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.models.io import load_model, trusted
        from tfkit.optimize.distill import distill

        student_art, teacher_art, data_art = inputs
        student, train, val = load_model_and_clips([student_art, data_art])
        teacher = load_model(teacher_art.file("model"), trust=trusted(teacher_art))
        before = _before(student, data_art, val)
        ctx.log(f"[distill] T={self.config.temperature:g}, alpha={self.config.alpha:g}, {self.config.epochs} epochs")
        result = distill(student, teacher, train, val, self.config, progress=ctx.progress,
                         symmetries=data_art.manifest.spec.get("symmetries"))
        ctx.log(f"[distill] validation accuracy {before:.3f} -> {result.val_accuracy:.3f}")
        return _compressed(student_art, before, result.model, {
            "val_accuracy": result.val_accuracy, "teacher_val_accuracy": _before(teacher, data_art, val)}, workdir)
