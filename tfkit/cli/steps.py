"""The single-step commands: data, build, import, train, convert, bench, report."""
from __future__ import annotations

from pathlib import Path

import click

from tfkit.cli.common import (
    HOW_BENCH,
    HOW_DATA,
    HOW_MODEL,
    HOW_TFLITE,
    context,
    done,
    force_option,
    load_artifact,
    out_option,
    quiet_option,
)
from tfkit.cli.options import config_from, config_options
from tfkit.models.spec import VideoModelSpec
from tfkit.optimize.cluster import ClusterConfig
from tfkit.optimize.distill import DistillConfig
from tfkit.optimize.lowrank import LowRankConfig
from tfkit.optimize.prune import PruneConfig
from tfkit.optimize.structured import StructuredConfig
from tfkit.steps.bench import BenchStepConfig, ReportConfig
from tfkit.steps.convert import ConvertConfig
from tfkit.steps.data import DataConfig
from tfkit.train import TrainConfig
from tfkit.types import ArtifactKind

ARTIFACT = click.Path(path_type=Path)


@click.command()
@config_options(DataConfig)
@out_option
@quiet_option
@force_option
def data(out, quiet, force, **kw):
    """Decode videos into train/val clip sets. SOURCE is `builtin` (the generated motion set) or a
    folder laid out as root/<class>/<video>.{mp4,avi,mkv,webm,mov}.

    Videos are decoded by streaming (only the frames the clips use, shrunk at once), so long 1080p
    footage needs no more memory than a short clip. Each video gives up to --clips-per-video clips
    (--windows uniform: non-overlapping, evenly spread; sliding: every --window-stride frames); the
    split is by video. Prints clips per class and split; a class with no readable video or an empty
    validation split is an error."""
    from tfkit.data.folder import scan
    from tfkit.steps import run_step
    from tfkit.steps.data import BUILTIN, DataStep

    cfg = config_from(DataConfig, kw)
    if cfg.source != BUILTIN:
        scan(cfg.source)  # fail fast, before any work, on a missing or empty folder
    done(run_step(DataStep(cfg), [], out, context(quiet), force=force))


@click.command()
@config_options(VideoModelSpec, rename={"family": "model", "num_classes": "classes"})
@out_option
@quiet_option
def build(out, quiet, **kw):
    """Build an untrained zoo model (see `tfkit list models`)."""
    from tfkit.models import MODELS
    from tfkit.steps import run_step
    from tfkit.steps.model import BuildStep

    spec = config_from(VideoModelSpec, kw)
    MODELS.get(spec.family)  # unknown name -> "did you mean" before TensorFlow loads
    done(run_step(BuildStep(spec), [], out, context(quiet)))


@click.command()
@click.argument("model", type=ARTIFACT)
@click.option("--data", "data_dir", type=ARTIFACT, required=True, help="Dataset artifact (from `tfkit data`).")
@config_options(TrainConfig, exclude=("normalization",))
@out_option
@quiet_option
@force_option
def train(model, data_dir, out, quiet, force, **kw):
    """Train MODEL (a Keras artifact) on a dataset artifact; records validation accuracy."""
    from tfkit.steps import run_step
    from tfkit.steps.model import TrainStep

    model_art = load_artifact(model, ArtifactKind.KERAS_MODEL, how=HOW_MODEL)
    data_art = load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA)
    cfg = config_from(TrainConfig, kw, normalization=data_art.manifest.spec["clip"]["normalization"])
    done(run_step(TrainStep(cfg), [model_art, data_art], out, context(quiet), force=force))


@click.command()
@click.argument("model", type=ARTIFACT)
@click.option("--data", "data_dir", type=ARTIFACT, required=True, help="Dataset artifact to fine-tune on.")
@config_options(PruneConfig)
@out_option
@quiet_option
@force_option
def prune(model, data_dir, out, quiet, force, **kw):
    """Magnitude-prune MODEL (a trained Keras artifact) while fine-tuning; records per-layer
    sparsity and validation accuracy before and after. Zeros survive `tfkit convert --precision
    int8`; add --sparse there to store them in TFLite's sparse format."""
    from tfkit.steps import run_step
    from tfkit.steps.optimize import PruneStep

    cfg = config_from(PruneConfig, kw)  # a ratio outside (0, 1) fails here, before TensorFlow loads
    model_art = load_artifact(model, ArtifactKind.KERAS_MODEL, how=HOW_MODEL)
    data_art = load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA)
    done(run_step(PruneStep(cfg), [model_art, data_art], out, context(quiet), force=force))


def _compression_command(config_cls, step: str, doc: str, *, exclude: tuple[str, ...] = (), teacher: bool = False):
    """A command MODEL --data DATA [--teacher TEACHER] + the config's options -> one compression step."""

    def command(model, data_dir, out, quiet, force, teacher_dir=None, **kw):
        import importlib

        from tfkit.steps import run_step

        cfg = config_from(config_cls, kw)  # bad values fail here, before TensorFlow loads
        arts = [load_artifact(model, ArtifactKind.KERAS_MODEL, how=HOW_MODEL)]
        if teacher:
            arts.append(load_artifact(teacher_dir, ArtifactKind.KERAS_MODEL, how=HOW_MODEL))
        arts.append(load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA))
        step_cls = getattr(importlib.import_module("tfkit.steps.optimize"), step)
        done(run_step(step_cls(cfg), arts, out, context(quiet), force=force))

    command.__doc__ = doc
    for decorate in reversed([
        click.command(),
        click.argument("model", type=ARTIFACT),
        click.option("--data", "data_dir", type=ARTIFACT, required=True, help="Dataset artifact to fine-tune on."),
        *([click.option("--teacher", "teacher_dir", type=ARTIFACT, required=True,
                        help="Trained Keras artifact to learn from.")] if teacher else []),
        config_options(config_cls, exclude=exclude), out_option, quiet_option, force_option]):
        command = decorate(command)
    return command


structured = _compression_command(
    StructuredConfig, "StructuredStep",
    """Make MODEL faster: time each residual block at several widths on --device (an address such
    as ssh:pi@board, or a devices.yaml name; this host by default), split its latency
    into a fixed and a width-dependent part, remove the blocks that save most per accuracy lost
    (--block-target of the latency), then remove --ratio of the channels by importance, and distill
    from the original. --no-blocks is channel pruning alone.""",
    exclude=("widths", "channel_options"))
cluster = _compression_command(
    ClusterConfig, "ClusterStep",
    """Cluster MODEL's weights (N shared values per kernel) while fine-tuning; gzip shrinks, int8 keeps
    the clusters per channel with cluster-preserving QAT.""")
lowrank = _compression_command(
    LowRankConfig, "LowRankStep",
    """Factorize MODEL's Dense and 1x1 convolutions by truncated SVD (rank by kept --energy or a
    --macs-budget), then fine-tune 2 epochs.""", exclude=("layers",))
distill = _compression_command(
    DistillConfig, "DistillStep",
    """Train MODEL (the student) from --teacher's softened logits and the labels.""", exclude=("features",),
    teacher=True)


@click.command(name="import")
@click.argument("model_path", type=click.Path(path_type=Path))
@click.option("--trust-code", "trust", is_flag=True,
              help="Load Lambda layers and custom classes: their code runs on load. Only for files you trust.")
@click.option("--name", default=None, help="Name recorded for the model (default: the file name).")
@out_option
@quiet_option
@force_option
def import_model(model_path, trust, name, out, quiet, force):
    """Bring your own model: a tf_keras .keras/.h5 file or SavedModel folder, image (N,H,W,C) or
    video (N,T,H,W,C), checked before loading, as a Keras artifact for convert, prune, train..."""
    from tfkit.steps import run_step
    from tfkit.steps.model import ImportConfig, ImportStep

    cfg = ImportConfig(path=str(model_path), trust=trust, name=name)
    done(run_step(ImportStep(cfg), [], out, context(quiet), force=force))


@click.command()
@click.argument("model", type=ARTIFACT)
@click.option("--data", "data_dir", type=ARTIFACT, default=None,
              help="Dataset artifact: calibration (train split) and parity clips (val split). Without it, "
                   "random inputs of the model's shape: a smoke test, not an accuracy check.")
@config_options(ConvertConfig)
@out_option
@quiet_option
@force_option
def convert(model, data_dir, out, quiet, force, **kw):
    """Convert MODEL to TFLite in one precision (see `tfkit list precisions`); fails if parity breaks."""
    from tfkit.steps import run_step
    from tfkit.steps.convert import ConvertStep

    cfg = config_from(ConvertConfig, kw)  # validates the precision name first
    arts = [load_artifact(model, ArtifactKind.KERAS_MODEL, how=HOW_MODEL)]
    if data_dir is not None:
        arts.append(load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA))
    done(run_step(ConvertStep(cfg), arts, out, context(quiet), force=force))


def _out_checked_late(fn):
    """--out without click's `required`, which would be checked before the inputs: a wrong MODEL
    should be what the user hears about first. `_need_out` checks it once the inputs are resolved."""
    return click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Output folder (an artifact folder with manifest.json). Required.")(fn)


def _need_out(out, example: str) -> Path:
    from tfkit.errors import UsageError

    if out is None:
        raise UsageError(f"Missing option '--out': the folder to write the result into, e.g. --out {example}.")
    return out


HOW_TFLITE_OR_FILE = f"pass a .tflite file, or {HOW_TFLITE}"


def _tflite_models(paths) -> list:
    """Each path: a `tfkit convert` folder, or a .tflite file from anywhere (parsed in a child
    process first, so a corrupt or hostile file ends in one error line)."""
    from tfkit.errors import InputPathError
    from tfkit.steps.bench import tflite_file_artifact

    for p in paths:
        if Path(p).is_dir() and not (Path(p) / "manifest.json").is_file():
            raise InputPathError(f"{p} is a folder but not a tfkit artifact (no manifest.json); {HOW_TFLITE_OR_FILE}")
    return [tflite_file_artifact(p) if Path(p).is_file() else
            load_artifact(p, ArtifactKind.TFLITE_MODEL, how=HOW_TFLITE_OR_FILE) for p in paths]


@click.command()
@click.argument("models", type=ARTIFACT, nargs=-1, required=True)
@click.option("--data", "data_dir", type=ARTIFACT, default=None,
              help="Dataset artifact whose validation clips measure accuracy on the device (of the models "
                   "whose input they fit). Without it: latency and memory only, on random inputs.")
@config_options(BenchStepConfig, rename={"stream_fps": "fps"})
@_out_checked_late
@quiet_option
@force_option
def bench(models, data_dir, out, quiet, force, **kw):
    """Benchmark MODELS, each in a fresh process on the device: `tfkit convert` folders or any .tflite
    files (tfkit metadata used when present; each result says whether real clips or random inputs fed it).

    --runs timed runs are split over --rounds rounds; in each round every model runs once, with
    --cooldown seconds of rest between runner processes. Each result records the device's fingerprint,
    governor/frequency/thermal/charging readings before and after, energy per inference from a real
    counter (or null with the reason), and whether the device throttled. --delegate runs the model on
    that delegate or fails (never a silent CPU fallback); --cpu-affinity pins the runner to cores
    (e.g. 4,5,6,7); --stream feeds state outputs back in, frame by frame (--fps: count missed deadlines)."""
    from dataclasses import replace

    from click.core import ParameterSource

    from tfkit.bench.devices.kinds import check_runnable, resolve
    from tfkit.steps import run_step
    from tfkit.steps.bench import BenchStep

    cfg = config_from(BenchStepConfig, kw)
    resolved = check_runnable(resolve(cfg.device))  # a bad or unsupported address fails before any model is read
    if resolved.entry is not None:  # a named device's options, unless given on the command line
        ctx = click.get_current_context()
        given = {n for n in ("threads", "runtime", "delegate", "cpu_affinity")
                 if ctx.get_parameter_source(n) != ParameterSource.DEFAULT}
        cfg = replace(cfg, **{k: v for k, v in _entry_options(resolved.entry).items() if k not in given})
    data_arts = [] if data_dir is None else [load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA)]
    arts = _tflite_models(models)
    out = _need_out(out, "out/bench")
    done(run_step(BenchStep(cfg), [*data_arts, *arts], out, context(quiet), force=force))


def _entry_options(entry) -> dict:
    """The bench options a devices.yaml entry sets, as BenchStepConfig spells them."""
    from tfkit.bench.devices.base import cores_from_mask

    options = dict(entry.bench_defaults())
    if entry.delegate is not None:
        options["delegate"] = entry.delegate
    affinity = entry.cpu_affinity
    if affinity is not None:  # core ids, or a taskset mask as written in the file
        cores = cores_from_mask(affinity) if isinstance(affinity, str) else affinity
        options["cpu_affinity"] = ",".join(str(c) for c in cores)
    return options


def _is_artifact_of(path: Path, kind: ArtifactKind) -> bool:
    from tfkit.artifacts import Artifact
    from tfkit.errors import TfkitError

    try:
        return Path(path).is_dir() and Artifact.load(path).kind == kind
    except TfkitError:
        return False


@click.command()
@click.argument("inputs", type=ARTIFACT, nargs=-1, required=True)
@config_options(ReportConfig)
@_out_checked_late
@quiet_option
def report(inputs, out, quiet, **kw):
    """Write report.json, report.md, report.html and latency_accuracy.png from `tfkit bench` folders,
    or from .tflite files / `tfkit convert` folders: those are benchmarked first with bench's defaults
    (no dataset: latency and memory on random inputs) into the folder OUT-bench beside OUT.

    Several bench folders (e.g. one per device) give a column per device, with each device's
    fingerprint and energy source."""
    from tfkit.steps import run_step
    from tfkit.steps.bench import BenchStep, ReportStep

    if all(_is_artifact_of(p, ArtifactKind.BENCHMARK) for p in inputs):
        arts = [load_artifact(p, ArtifactKind.BENCHMARK, how=HOW_BENCH) for p in inputs]
        out = _need_out(out, "out/report")
    else:
        models = _tflite_models(inputs)
        out = _need_out(out, "out/report")
        arts = [run_step(BenchStep(BenchStepConfig()), models, out.with_name(out.name + "-bench"), context(quiet))]
    done(run_step(ReportStep(config_from(ReportConfig, kw)), arts, out, context(quiet)))
