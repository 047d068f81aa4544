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
    family = spec.get("model", {}).get("family", "model")
    return f"{family}-{spec.get('precision', 'keras')}"


@STEPS.register("bench")
class BenchStep(Step):
    """Measure .tflite artifacts on a device: latency, init, first inference, memory, accuracy.

    Inputs: [dataset, tflite model, tflite model, ...]; accuracy is measured on the dataset's
    validation clips through the TFLite interpreter on the device itself."""

    name = "bench"
    input_kinds = (ArtifactKind.DATASET, ArtifactKind.TFLITE_MODEL)
    variadic = True
    config: BenchStepConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.bench import BenchConfig, benchmark

        data_art, *models = inputs
        c: BenchStepConfig = self.config
        norm = data_art.manifest.spec["clip"]["normalization"]
        config = BenchConfig(threads=c.threads, warmup=c.warmup, runs=c.runs, normalization=norm,
                             runtime=c.runtime, eval_limit=c.eval_limit)
        entries = [(artifact_label(m), m.manifest.spec.get("precision", "unknown"), m.file("model")) for m in models]
        results = benchmark(entries, device=c.device, eval_npz=data_art.file("val"), config=config,
                            progress=ctx.progress)
        for r in results:
            ctx.log(f"[bench] {r.name}: p50 {r.latency_ms.p50:.2f} ms, accuracy "
                    f"{'n/a' if r.accuracy is None else f'{r.accuracy:.3f}'}, {r.size_bytes / 1024:.0f} KB")
        write_text_atomic(workdir / RESULTS_FILE, json.dumps([r.to_dict() for r in results], indent=2))
        metrics = {r.name: {"accuracy": r.accuracy, "p50_ms": r.latency_ms.p50, "size_bytes": r.size_bytes}
                   for r in results}
        return StepOutput(ArtifactKind.BENCHMARK, {"results": RESULTS_FILE}, {"device": c.device}, metrics)


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
