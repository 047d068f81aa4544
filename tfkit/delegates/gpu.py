"""GPU delegate: TensorFlow's static GPU compatibility analyzer, captured as data.

The analyzer is a static check of op/dtype support; a model it passes can still fall back at run
time on a given phone, so this is a first gate, not a verdict.

Example:
    >>> report = analyze_gpu(flatbuffer)  # doctest: +SKIP
    >>> report.compatible, report.warnings
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass

COMPATIBLE_MARK = "Your model looks compatible with GPU delegate"


@dataclass(frozen=True)
class GpuReport:
    compatible: bool
    warnings: tuple[str, ...]  # the analyzer's "GPU COMPATIBILITY WARNING" lines, as printed

    def to_dict(self) -> dict:
        return asdict(self)


def parse_analyzer_output(text: str) -> GpuReport:
    """Pure parser of `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` output."""
    warnings = tuple(line.strip() for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line)
    return GpuReport(COMPATIBLE_MARK in text and not warnings, warnings)


def analyze_gpu(flatbuffer: bytes) -> GpuReport:
    from tfkit._compat.keras import tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf().lite.experimental.Analyzer.analyze(model_content=flatbuffer, gpu_compatibility=True)
    return parse_analyzer_output(buf.getvalue())
