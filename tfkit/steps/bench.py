"""`bench` and `report` steps: .tflite artifacts -> measurements on a device -> report files.

Example:
    >>> run_step(BenchStep(BenchStepConfig()), [f32_art, int8_art, data_art], Path("out/06-bench"))  # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.artifacts import write_text_atomic
from tfkit.errors import UsageError
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind, BenchResult

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class BenchStepConfig:
    device: str = "local"
    threads: int = 2
    warmup: int = 5
    runs: int = 50
    runtime: str = "auto"
    eval_limit: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def artifact_label(art) -> str:
    """A readable, unique-enough name for a model artifact: family + precision + folder."""
    spec = art.manifest.spec
    family = spec.get("model", {}).get("family", spec.get("name", "model"))  # a user model: its name
    return f"{family}-{spec.get('precision', 'keras')}"


@STEPS.register("bench")
class BenchStep(Step):
    """Measure .tflite artifacts on a device: latency, init, first inference, memory, accuracy.

    Inputs: [dataset, tflite model, tflite model, ...]; accuracy is measured on the dataset's
    validation clips through the TFLite interpreter on the device itself (for a user model, only if
    they fit its input). Without the dataset, [tflite model, ...]: no accuracy."""

    name = "bench"
    input_kinds = (ArtifactKind.DATASET, ArtifactKind.TFLITE_MODEL)
    variadic = True
    config: BenchStepConfig

    @classmethod
    def accepts(cls, kinds) -> bool:
        # Without a dataset: latency and memory only (a user model imported without one).
        return (bool(kinds) and all(k == ArtifactKind.TFLITE_MODEL for k in kinds)) or super().accepts(kinds)

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.bench import BenchConfig, benchmark

        data_art = inputs[0] if inputs[0].kind == ArtifactKind.DATASET else None
        models = inputs[1:] if data_art is not None else list(inputs)
        c: BenchStepConfig = self.config
        norm = data_art.manifest.spec["clip"]["normalization"] if data_art is not None else "symmetric"
        config = BenchConfig(threads=c.threads, warmup=c.warmup, runs=c.runs, normalization=norm,
                             runtime=c.runtime, eval_limit=c.eval_limit)
        entries = [(artifact_label(m), m.manifest.spec.get("precision", "unknown"), m.file("model")) for m in models]
        scored = [data_art is not None and _fits(m, data_art, ctx) for m in models]
        results = [None] * len(entries)
        for score in (True, False):  # accuracy only where the dataset's clips fit the model's input
            picked = [i for i, s in enumerate(scored) if s == score]
            if picked:
                measured = benchmark([entries[i] for i in picked], device=c.device, config=config,
                                     eval_npz=data_art.file("val") if score else None, progress=ctx.progress)
                for i, r in zip(picked, measured):
                    results[i] = r
        for r in results:
            ctx.log(f"[bench] {r.name}: p50 {r.latency_ms.p50:.2f} ms, accuracy "
                    f"{'n/a' if r.accuracy is None else f'{r.accuracy:.3f}'}, {r.size_bytes / 1024:.0f} KB")
        write_text_atomic(workdir / RESULTS_FILE, json.dumps([r.to_dict() for r in results], indent=2))
        metrics = {r.name: {"accuracy": r.accuracy, "p50_ms": r.latency_ms.p50, "size_bytes": r.size_bytes}
                   for r in results}
        return StepOutput(ArtifactKind.BENCHMARK, {"results": RESULTS_FILE}, {"device": c.device}, metrics)


def _fits(model_art, data_art, ctx: RunContext) -> bool:
    """Whether the dataset's clips and classes fit a user model (zoo models are scored as always)."""
    spec = model_art.manifest.spec
    if not spec.get("user"):
        return True
    clip, classes = data_art.manifest.spec["clip"], len(data_art.manifest.spec["classes"])
    want = spec.get("input", {}).get("shape", spec.get("input_shape", []))[1:]
    got = [clip["frames"], clip["size"], clip["size"], 3]
    if want != got or spec.get("num_classes") != classes:
        ctx.log(f"[bench] {artifact_label(model_art)}: input {want} with {spec.get('num_classes')} classes does not "
                f"take the dataset's clips {got} of {classes} classes; latency only, no accuracy")
        return False
    return True


def load_results(bench_art) -> list[BenchResult]:
    try:
        return [BenchResult.from_dict(d) for d in json.loads(bench_art.file("results").read_text())]
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{bench_art.path} holds unreadable benchmark results ({e}); rerun `tfkit bench`") from e


@dataclass(frozen=True)
class ReportConfig:
    title: str = "tfkit report"

    def to_dict(self) -> dict:
        return asdict(self)


@STEPS.register("report")
class ReportStep(Step):
    """Write report.json/.md/.html and the latency-accuracy plot. Inputs: [benchmark]."""

    name = "report"
    input_kinds = (ArtifactKind.BENCHMARK,)
    config: ReportConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.report import write_report

        (bench_art,) = inputs
        notes = _notes_from_history(bench_art)
        paths = write_report(load_results(bench_art), workdir, title=self.config.title, notes=notes)
        files = {"json": paths.json.name, "markdown": paths.markdown.name, "html": paths.html.name,
                 "plot": paths.plot.name}
        return StepOutput(ArtifactKind.REPORT, files, {}, {})


def _notes_from_history(art) -> dict:
    """What the report should tell besides the table: training accuracy, parity of each conversion."""
    notes = {}
    for rec in art.manifest.history:
        if rec.step == "train":
            notes["keras validation accuracy"] = round(rec.metrics.get("val_accuracy", float("nan")), 4)
        if rec.step == "convert":
            p = rec.metrics.get("parity", {})
            notes[f"parity {rec.config.get('precision')}"] = p.get("threshold")
    return notes
