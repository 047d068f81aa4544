"""Shared CLI plumbing: artifact arguments, the run context, printing results."""
from __future__ import annotations

from pathlib import Path

import click

from tfkit.errors import InputPathError
from tfkit.types import ArtifactKind


def out_option(fn):
    return click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
                        help="Output folder (an artifact folder with manifest.json).")(fn)


def quiet_option(fn):
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars or step logs.")(fn)


def force_option(fn):
    return click.option("--force", is_flag=True, help="Rerun even if inputs and config are unchanged.")(fn)


def context(quiet: bool):
    from tfkit.steps.base import RunContext

    return RunContext(progress=not quiet, log=(lambda msg: None) if quiet else RunContext().log)


def load_artifact(path: Path, kind: ArtifactKind, *, how: str):
    """Load an artifact folder and check its kind; `how` tells the user how to make one."""
    from tfkit.artifacts import Artifact

    path = Path(path)
    if not path.exists():
        raise InputPathError(f"{path} does not exist; {how}")
    art = Artifact.load(path) if path.is_dir() else None
    if art is None:
        raise InputPathError(f"{path} is not an artifact folder; {how}")
    if art.kind != kind:
        raise InputPathError(f"{path} holds a {art.kind.value} artifact, expected {kind.value}; {how}")
    return art


def tflite_file(path: Path) -> Path:
    """The .tflite file itself, or the `model` file of a tfkit tflite artifact folder."""
    path = Path(path)
    if path.is_dir():
        return load_artifact(path, ArtifactKind.TFLITE_MODEL, how=HOW_TFLITE).file("model")
    if not path.is_file():
        raise InputPathError(f"{path} does not exist; pass a .tflite file or a folder from `tfkit convert`")
    return path


HOW_DATA = "make one with `tfkit data --source builtin|VIDEO_ROOT --out DIR`"
HOW_MODEL = ("make one with `tfkit build ... --out DIR` (then `tfkit train`), or bring your own with "
             "`tfkit import MODEL.keras|.h5|SAVEDMODEL_DIR --out DIR`")
HOW_TFLITE = "make one with `tfkit convert MODEL --data DATA --precision P --out DIR`"
HOW_BENCH = "make one with `tfkit bench TFLITE... --data DATA --out DIR`"


def done(art) -> None:
    click.echo(str(art.path))
