"""`bench` and `report` steps: .tflite artifacts -> measurements on a device -> report files.

A .tflite file tfkit did not make enters as `tflite_file_artifact(path)`: its tfkit metadata is used
when present (precision, normalization), and each result says which inputs fed it (`input_source`:
"real clips" when the dataset scored it, else "random").

Example:
    >>> run_step(BenchStep(BenchStepConfig()), [data_art, f32_art, int8_art], Path("out/06-bench"))  # doctest: +SKIP
    >>> run_step(BenchStep(BenchStepConfig()), [tflite_file_artifact("m.tflite")], Path("out/b"))  # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tfkit.artifacts import Artifact, Manifest, write_text_atomic
from tfkit.bench.devices.base import BenchConfig, RunnerDelegate
from tfkit.errors import BenchmarkError, ModelFileError, UsageError
from tfkit.report.table import BENCH_RUN, RANDOM, REAL_CLIPS, inputs_phrase
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind, BenchResult

RESULTS_FILE = "results.json"
PARTIAL_RESULTS_FILE = "results.partial.json"  # what a failed batch measured, kept in <out>.failed/


@dataclass(frozen=True)
class BenchStepConfig:
    """The bench step's options (and `tfkit bench`'s flags): BenchConfig's, as plain values.

    `rounds` defaults to 3 here (1 in the API): interleaving is what makes drift and throttling
    visible, and three runner starts per model cost well under a second on this host. With fewer
    `runs` than `rounds`, each round times one run (`runs` rounds). `cpu_affinity` is core ids as
    text ("0,2,3"); `stream_fps` is the `--fps` flag of `tfkit bench`.

    Example:
        >>> BenchStepConfig(runs=30, rounds=3, cooldown=10, delegate="xnnpack").bench_config().runs_per_round()
        [10, 10, 10]
    """

    device: str = "local"
    threads: int = 2
    warmup: int = 5
    runs: int = 50
    runtime: str = "auto"
    eval_limit: int | None = None
    delegate: RunnerDelegate = RunnerDelegate.DEFAULT
    delegate_library: str | None = None
    cpu_affinity: str | None = None
    stream: bool = False
    stream_fps: float | None = None
    rounds: int = 3
    cooldown: float = 0.0  # seconds of rest between runner processes
    benchmark_binary: str | None = None  # adb phones: LiteRT's benchmark_model (a file on this host)

    def __post_init__(self):
        try:
            self.bench_config()  # every value checked now, before any model is read
        except UsageError as e:  # in this config's own words (they are the CLI's flags too)
            text = str(e).replace("BenchConfig.cooldown_s", "cooldown").replace("stream=True", "--stream")
            raise UsageError(text.replace("BenchConfig.", "")) from None
        # Stored as plain text, so the manifest's config and its hash are plain JSON.
        object.__setattr__(self, "delegate", RunnerDelegate(self.delegate).value)

    def bench_config(self, normalization: str = "symmetric") -> BenchConfig:
        return BenchConfig(threads=self.threads, warmup=self.warmup, runs=self.runs, normalization=normalization,
                           runtime=self.runtime, eval_limit=self.eval_limit, delegate=self.delegate,
                           delegate_library=self.delegate_library, cpu_affinity=self.cpu_affinity,
                           stream=self.stream, fps=self.stream_fps, rounds=min(self.rounds, self.runs),
                           cooldown_s=self.cooldown, benchmark_binary=self.benchmark_binary)

    def to_dict(self) -> dict:
        return asdict(self)


def artifact_label(art) -> str:
    """A readable, unique-enough name for a model artifact: family + precision (a plain file: its name)."""
    spec = art.manifest.spec
    if spec.get("file"):
        return spec["name"]
    family = spec.get("model", {}).get("family", spec.get("name", "model"))  # a user model: its name
    return f"{family}-{spec.get('precision', 'keras')}"


def tflite_file_artifact(path: str | Path) -> Artifact:
    """A .tflite file that tfkit may not have made, as an in-memory tflite artifact for the bench step.

    The file is parsed in a memory-capped child process first (tfkit.isolate), so a corrupt or
    hostile file ends in one ModelFileError; nothing is written beside it. Its tfkit metadata, when
    present, gives the precision and normalization; without it the precision is "unknown".
    """
    from tfkit.convert.metadata import describe_file

    path = Path(path)
    info = describe_file(path)
    meta = info["tfkit"]
    inputs, outputs = info["inputs"], info["outputs"]
    for t in inputs:  # the runner refuses these too; here the user hears it before any benchmark starts
        dynamic = [axis for axis, size in enumerate(t["shape_signature"]) if size < 0 and axis > 0]
        if dynamic:
            raise ModelFileError(f"{path}: input {t['name']!r} has dynamic dimensions at axes {dynamic} (signature "
                                 f"{t['shape_signature']}), so a benchmark cannot know what size to time. Export it "
                                 "with fixed input sizes (batch may stay dynamic) and convert again.")
    spec = {
        "name": path.stem,
        "file": str(path.resolve()),
        "tfkit_metadata": meta is not None,
        "precision": (meta or {}).get("precision") or "unknown",
        "normalization": (meta or {}).get("normalization"),
        "inputs": [{k: t[k] for k in ("name", "shape", "shape_signature", "dtype")} for t in inputs],
        # What `_fits` compares with a dataset: the one input's shape, the first output's last dim.
        "input": {"shape": inputs[0]["shape"]} if len(inputs) == 1 else {},
        "num_classes": outputs[0]["shape"][-1] if outputs and outputs[0]["shape"] else None,
    }
    manifest = Manifest(kind=ArtifactKind.TFLITE_MODEL, files={"model": path.name}, spec=spec)
    return Artifact(path.parent, manifest)


def parity_of(model_art) -> dict | None:
    """The parity check of the conversion that made a tflite artifact, with which inputs it ran on
    ("real clips" or "random"); None for a file tfkit did not convert."""
    rec = next((r for r in reversed(model_art.manifest.history) if r.step == "convert"), None)
    if rec is None or not isinstance(rec.metrics.get("parity"), dict):
        return None
    return {**rec.metrics["parity"], "inputs": parity_inputs(rec)}


def parity_inputs(rec) -> str:
    """"real clips" or "random": recorded by the convert step; for records made before it was, a
    dataset among the step's input files means real clips."""
    recorded = rec.metrics.get("parity_inputs")
    if recorded in (REAL_CLIPS, RANDOM):
        return recorded
    return REAL_CLIPS if any(d.path.endswith(".npz") for d in rec.inputs) else RANDOM


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
        from tfkit.bench import benchmark

        data_art = inputs[0] if inputs[0].kind == ArtifactKind.DATASET else None
        models = inputs[1:] if data_art is not None else list(inputs)
        c: BenchStepConfig = self.config
        data_norm = data_art.manifest.spec["clip"]["normalization"] if data_art is not None else "symmetric"
        entries = [(artifact_label(m), m.manifest.spec.get("precision", "unknown"), m.file("model")) for m in models]
        scored = [data_art is not None and _fits(m, data_art, ctx) for m in models]
        # A plain file's own tfkit metadata says how it wants pixels; tfkit artifacts use the dataset's.
        norms = [m.manifest.spec.get("normalization") or data_norm if m.manifest.spec.get("file") else data_norm
                 for m in models]
        results = [None] * len(entries)
        if c.rounds > c.runs:
            ctx.log(f"[bench] {c.runs} timed runs cannot fill {c.rounds} rounds: {c.runs} rounds of one run each")
        for score, norm in dict.fromkeys(zip(scored, norms)):  # one runner batch per (scored, normalization)
            picked = [i for i in range(len(entries)) if (scored[i], norms[i]) == (score, norm)]
            try:
                measured = benchmark([entries[i] for i in picked], device=c.device, config=c.bench_config(norm),
                                     eval_npz=data_art.file("val") if score else None, progress=ctx.progress)
            except BenchmarkError as e:  # keep what was measured: it lands in <out>.failed/ with the log
                done = [r for r in results if r is not None] + list(getattr(e, "results", []))
                write_text_atomic(workdir / PARTIAL_RESULTS_FILE, json.dumps([r.to_dict() for r in done], indent=2))
                if done:
                    ctx.log(f"[bench] {len(done)} of {len(entries)} models were measured before the failure: "
                            f"{PARTIAL_RESULTS_FILE}")
                raise
            for i, r in zip(picked, measured):
                results[i] = r
        results = [replace(r, extra={**r.extra, **_provenance(m, r)}) for m, r in zip(models, results)]
        for r in results:
            energy = "n/a" if r.energy_mj_per_inference is None else f"{r.energy_mj_per_inference:.3g} mJ"
            ctx.log(f"[bench] {r.name}: p50 {r.latency_ms.p50:.2f} ms, accuracy "
                    f"{'n/a' if r.accuracy is None else f'{r.accuracy:.3f}'} ({r.extra['input_source']} inputs), "
                    f"{r.size_bytes / 1024:.0f} KB, energy {energy}, delegate {r.delegate}"
                    + (f"; throttled: {r.throttle_reason}" if r.throttled else ""))
        write_text_atomic(workdir / RESULTS_FILE, json.dumps([r.to_dict() for r in results], indent=2))
        metrics = {r.name: {"accuracy": r.accuracy, "p50_ms": r.latency_ms.p50, "size_bytes": r.size_bytes,
                            "inputs": r.extra["input_source"], "energy_mj_per_inference": r.energy_mj_per_inference,
                            "throttled": r.throttled} for r in results}
        return StepOutput(ArtifactKind.BENCHMARK, {"results": RESULTS_FILE}, {"device": c.device}, metrics)


def _provenance(model_art, result) -> dict:
    """What the report must say about where a result's numbers come from."""
    spec = model_art.manifest.spec
    return {"input_source": REAL_CLIPS if result.accuracy is not None else RANDOM,
            "source": "file" if spec.get("file") else "tfkit",
            "tfkit_metadata": bool(spec.get("tfkit_metadata", not spec.get("file"))),
            "parity": parity_of(model_art)}


def _fits(model_art, data_art, ctx: RunContext) -> bool:
    """Whether the dataset's clips and classes fit a user model (zoo models are scored as always)."""
    spec = model_art.manifest.spec
    if not (spec.get("user") or spec.get("file")):
        return True
    clip, classes = data_art.manifest.spec["clip"], len(data_art.manifest.spec["classes"])
    want = spec.get("input", {}).get("shape", spec.get("input_shape", []))[1:]
    got = [clip["frames"], clip["size"], clip["size"], 3]
    if want != got or spec.get("num_classes") != classes:
        several = len(spec.get("inputs", ())) > 1  # a plain file: scoring feeds one clip to one input
        has = f"{len(spec['inputs'])} inputs" if several else f"input {want} with {spec.get('num_classes')} classes"
        ctx.log(f"[bench] {artifact_label(model_art)}: {has} does not take the dataset's clips {got} of {classes} "
                "classes; latency and memory only (random inputs), no accuracy")
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
    """Write report.json/.md/.html and the latency-accuracy plot. Inputs: [benchmark, ...]: several
    bench runs (e.g. one per device) give a column per device."""

    name = "report"
    input_kinds = (ArtifactKind.BENCHMARK,)
    variadic = True
    config: ReportConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.report import write_report

        notes, results = {}, []
        for bench_art in inputs:
            notes.update(_notes_from_history(bench_art))
            loaded = load_results(bench_art)
            if len(inputs) > 1:  # the same device benchmarked twice is two columns, one per run
                loaded = [replace(r, extra={**r.extra, BENCH_RUN: str(bench_art.path)}) for r in loaded]
            results += loaded
        paths = write_report(results, workdir, title=self.config.title, notes=notes)
        files = {"json": paths.json.name, "markdown": paths.markdown.name, "html": paths.html.name,
                 "plot": paths.plot.name}
        return StepOutput(ArtifactKind.REPORT, files, {}, {})


def _notes_from_history(art) -> dict:
    """What the report should tell besides the table: training accuracy, parity of each conversion
    and which inputs that parity was checked on (random inputs prove no accuracy)."""
    notes = {}
    for rec in art.manifest.history:
        if rec.step == "train":
            notes["keras validation accuracy"] = round(rec.metrics.get("val_accuracy", float("nan")), 4)
        if rec.step == "convert":
            p = rec.metrics.get("parity", {})
            phrase = inputs_phrase(p.get("clips"), parity_inputs(rec))
            notes[f"parity {rec.config.get('precision')}"] = f"{p.get('threshold')} on {phrase}"
    return notes
