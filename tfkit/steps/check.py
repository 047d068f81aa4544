"""`check` step: per-op delegate coverage of a .tflite artifact, as a coverage artifact.

Example:
    >>> run_step(CheckStep(CheckConfig(delegate="gpu")), [tflite_art], Path("out/06-check-gpu"))  # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.artifacts import write_text_atomic
from tfkit.errors import UsageError
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind

COVERAGE_FILE = "coverage.json"
VERDICTS = ("full", "partial", "none")


@dataclass(frozen=True)
class CheckConfig:
    delegate: str = "xnnpack"  # xnnpack | gpu | nnapi | edgetpu | a plug-in's name
    android_api: int = 30  # NNAPI only: the Android API level targeted
    nnapi_max_partitions: int = 3  # NNAPI only: max_number_delegated_partitions (0: no limit)
    measure: bool = True  # GPU: ask LiteRT's GPU accelerator where a Vulkan driver exists (else static rules)
    require: str = "none"  # fail the step unless the verdict is at least this: full | partial | none

    def __post_init__(self):
        from tfkit.delegates import delegate_names

        if self.delegate not in delegate_names():
            from tfkit.errors import UnknownNameError

            raise UnknownNameError("delegate", self.delegate, delegate_names())
        if self.require not in VERDICTS:
            raise UsageError(f"require must be one of {', '.join(VERDICTS)}, got {self.require!r}")
        if not 27 <= self.android_api <= 40:
            raise UsageError(f"android_api must be an Android API level (27..40), got {self.android_api}")

    def to_dict(self) -> dict:
        return asdict(self)


@STEPS.register("check")
class CheckStep(Step):
    """Which ops of a .tflite a delegate runs, and why not the others. Inputs: [tflite model]."""

    name = "check"
    input_kinds = (ArtifactKind.TFLITE_MODEL,)
    config: CheckConfig

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.delegates import get_delegate
        from tfkit.delegates.check import CheckOptions, check_file

        c: CheckConfig = self.config
        (art,) = inputs
        options = CheckOptions(android_api=c.android_api, nnapi_max_partitions=c.nnapi_max_partitions, measure=c.measure)
        (cov,) = check_file(art.file("model"), [c.delegate], options=options)
        ctx.log(f"[check] {c.delegate}: {cov.summary()} ({'measured' if cov.measured else 'static'}: {cov.source})")
        for d in cov.disagreements:
            ctx.log(f"[check] static rules disagree: {d}")
        if VERDICTS.index(cov.verdict) > VERDICTS.index(c.require):
            raise UsageError(f"{c.delegate}: {cov.summary()}; the recipe requires '{c.require}' "
                             f"(see {workdir.name}/{COVERAGE_FILE} after a run without require)")
        payload = {**cov.to_dict(), **get_delegate(c.delegate).info()}
        write_text_atomic(workdir / COVERAGE_FILE, json.dumps(payload, indent=2))
        metrics = {k: payload[k] for k in ("verdict", "ops_total", "ops_delegated", "partitions", "summary",
                                           "measured")}
        return StepOutput(ArtifactKind.COVERAGE, {"coverage": COVERAGE_FILE},
                          {**art.manifest.spec, "delegate": c.delegate}, metrics)
