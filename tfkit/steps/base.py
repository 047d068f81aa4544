"""The step protocol and the run loop: a step turns input artifacts into one new artifact folder.

A rerun skips a step whose config and input files (sha256) are unchanged.

Example:
    >>> art = run_step(TrainStep(TrainConfig(epochs=5)), [model_art, data_art], Path("out/03-train"))  # doctest: +SKIP
"""
from __future__ import annotations

import platform
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from tfkit.artifacts import (
    MANIFEST,
    Artifact,
    FileDigest,
    Manifest,
    StepRecord,
    failed_dir,
    sha256_json,
    staged_dir,
    write_text_atomic,
)
from tfkit.errors import UsageError
from tfkit.registry import Registry
from tfkit.types import ArtifactKind

FAILED_LOG = "step.log"  # in `<out>.failed/`: what the step logged, then its error and traceback


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ignore(metrics: dict) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """How a step reports: `log` lines for the user, `record` for what it has measured so far (kept
    in `<out>.failed/metrics.json` if the step then fails or is interrupted)."""

    progress: bool = True
    log: Callable[[str], None] = field(default=_stderr)
    record: Callable[[dict], None] = field(default=_ignore)


class _Journal:
    """What a running step said and measured, for `<out>.failed/` when it does not finish."""

    def __init__(self, ctx: RunContext):
        self.lines: list[str] = []
        self.metrics: dict = {}
        self._ctx = ctx

    def log(self, msg: str) -> None:
        self.lines.append(f"{datetime.now(UTC).isoformat(timespec='seconds')} {msg}")
        self._ctx.log(msg)

    def record(self, metrics: dict) -> None:
        self.metrics.update(metrics)
        self._ctx.record(metrics)

    def write_failure(self, stage: Path, step: Step, config: dict, digests, error: BaseException) -> None:
        """step.log (its log lines, then the error and traceback), config.json and, if the step
        recorded any, metrics.json; beside whatever files it had already written."""
        import json
        import traceback

        what = str(error) or type(error).__name__
        text = "\n".join([*self.lines, f"--- {step.name} did not finish: {what}",
                          "".join(traceback.format_exception(error)).rstrip()])
        write_text_atomic(stage / FAILED_LOG, text + "\n")
        write_text_atomic(stage / "config.json", json.dumps(
            {"step": step.name, "config": config, "inputs": [asdict(d) for d in digests]}, indent=2, default=str))
        if self.metrics:
            write_text_atomic(stage / "metrics.json", json.dumps(self.metrics, indent=2, default=str))


@dataclass(frozen=True)
class StepOutput:
    kind: ArtifactKind
    files: dict  # role -> file name written inside the step's folder
    spec: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    tool_versions: dict = field(default_factory=dict)


class Step(ABC):
    """Subclasses set `name`, `input_kinds` and implement `run`; config is a frozen dataclass."""

    name: ClassVar[str]
    input_kinds: ClassVar[tuple[ArtifactKind, ...]] = ()  # last kind may repeat (see `variadic`)
    variadic: ClassVar[bool] = False

    def __init__(self, config=None):
        self.config = config

    def config_dict(self) -> dict:
        c = self.config
        if c is None:
            return {}
        return c.to_dict() if hasattr(c, "to_dict") else asdict(c) if is_dataclass(c) else dict(c)

    def extra_fingerprint(self) -> dict:
        """Anything outside the input artifacts that the result depends on (e.g. a user's video folder)."""
        return {}

    @classmethod
    def accepts(cls, kinds: Sequence[ArtifactKind]) -> bool:
        """Whether input artifacts of these kinds, in this order, fit the step. Steps with
        optional inputs override this; recipes call it before anything runs."""
        kinds, want = list(kinds), list(cls.input_kinds)
        return (kinds == want) or (cls.variadic and len(kinds) >= len(want) and kinds[:len(want) - 1] == want[:-1]
                                   and all(k == want[-1] for k in kinds[len(want) - 1:]))

    def check_inputs(self, inputs: Sequence[Artifact]) -> None:
        kinds = [a.kind for a in inputs]
        want = list(self.input_kinds)
        if not self.accepts(kinds):
            raise UsageError(f"step {self.name!r} takes {[k.value for k in want]}"
                             f"{' (last repeatable)' if self.variadic else ''}, got {[k.value for k in kinds]}")

    @abstractmethod
    def run(self, inputs: Sequence[Artifact], workdir: Path, ctx: RunContext) -> StepOutput:
        """Write output files into `workdir` (a staging folder) and describe them."""


STEPS: Registry[type[Step]] = Registry("step")


def _input_digests(inputs: Sequence[Artifact]) -> list[FileDigest]:
    return [FileDigest.of(a.file(role)) for a in inputs for role in sorted(a.manifest.files)]


def _merged_history(inputs: Sequence[Artifact]) -> list[StepRecord]:
    seen, history = set(), []
    for a in inputs:
        for rec in a.manifest.history:
            key = (rec.step, tuple(o.sha256 for o in rec.outputs), rec.started_at)
            if key not in seen:
                seen.add(key)
                history.append(rec)
    return history


def base_versions() -> dict:
    from importlib.metadata import version

    import numpy

    return {"tfkit": version("tfkit"), "python": platform.python_version(), "numpy": numpy.__version__}


def run_step(step: Step, inputs: Sequence[Artifact], out_dir: Path, ctx: RunContext = RunContext(),
             *, force: bool = False) -> Artifact:
    """Run `step` on `inputs` into `out_dir` atomically, or reuse `out_dir` if nothing changed."""
    step.check_inputs(inputs)
    out_dir = Path(out_dir)
    digests = _input_digests(inputs)
    config = step.config_dict()
    key = sha256_json({"step": step.name, "config": config, "inputs": [d.sha256 for d in digests],
                       "extra": step.extra_fingerprint()})
    if not force and (out_dir / MANIFEST).is_file():
        try:
            previous = Artifact.load(out_dir)
            if previous.manifest.cache_key == key and all(previous.file(r).exists() for r in previous.manifest.files):
                ctx.log(f"[{step.name}] unchanged, reusing {out_dir}")
                return previous
        except UsageError:
            pass  # unreadable old folder: rebuild it
    ctx.log(f"[{step.name}] -> {out_dir}")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    journal = _Journal(ctx)
    with staged_dir(out_dir) as stage:
        try:
            out = step.run(inputs, stage, replace(ctx, log=journal.log, record=journal.record))
        except BaseException as e:  # interrupts too: the staging folder becomes `.failed` with this in it
            try:
                journal.write_failure(stage, step, config, digests, e)
            except OSError:
                pass  # a full disk must not hide the step's own error
            e.add_note(f"{step.name}: its log, config and partial results are in {failed_dir(out_dir)}")
            raise
        record = StepRecord(
            step=step.name, config=config, inputs=tuple(digests),
            outputs=tuple(FileDigest.of(stage / name, stage) for _, name in sorted(out.files.items())),
            tool_versions={**base_versions(), **out.tool_versions}, metrics=out.metrics,
            started_at=started, duration_s=round(time.perf_counter() - t0, 3))
        manifest = Manifest(kind=out.kind, files=out.files, spec=out.spec,
                            history=(*_merged_history(inputs), record), cache_key=key)
        write_text_atomic(stage / MANIFEST, manifest.to_json())
    return Artifact(out_dir, manifest)
