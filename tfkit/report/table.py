"""The report's rows: one JSON record per artifact (a public contract) and the same rows as
Markdown and HTML tables. Names are user input, so every cell is escaped for its format.

Example:
    >>> artifact_record(result)["latency_ms"]["p50"]
    0.47
    >>> print(markdown_table([result]))
"""
from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tfkit.types import BenchResult

# The keys of each entry of report.json's "artifacts" list. Public contract: add, never rename.
ARTIFACT_KEYS = (
    "name", "precision", "size_bytes", "accuracy", "latency_ms", "init_ms", "first_inference_ms",
    "peak_rss_mb", "threads", "runtime", "device", "inputs", "parity",
)
REAL_CLIPS, RANDOM = "real clips", "random"  # the values of "inputs": which data fed a result
LATENCY_KEYS = ("p50", "p90", "p99", "mean")
PARITY_KEYS = ("threshold", "clips", "max_abs_logit_diff", "top1_agreement", "passed", "inputs")
NOT_AVAILABLE = "n/a"


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: an unknown measurement is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def input_source(result: BenchResult) -> str:
    """"real clips" when the accuracy came from a dataset's clips, else "random" (latency and memory
    are timed on seeded random inputs either way). Results saved before it was recorded: derived."""
    recorded = result.extra.get("input_source")
    return recorded if recorded in (REAL_CLIPS, RANDOM) else (RANDOM if result.accuracy is None else REAL_CLIPS)


def parity_record(result: BenchResult) -> dict | None:
    """The conversion's parity check {threshold, clips, passed, inputs, ...}, or None (not converted by tfkit)."""
    parity = result.extra.get("parity")
    return parity if isinstance(parity, dict) else None


def parity_text(result: BenchResult) -> str:
    """e.g. "top-1 agreement 0.984 >= 0.95 on 64 random inputs"; n/a for a file tfkit did not convert."""
    p = parity_record(result)
    if p is None:
        return NOT_AVAILABLE
    return f"{p.get('threshold')} on {inputs_phrase(p.get('clips'), p.get('inputs'))}"


def inputs_phrase(count: object, inputs: object) -> str:
    """e.g. "64 real clips", "64 random inputs", "inputs not recorded"."""
    what = {REAL_CLIPS: "real clips", RANDOM: "random inputs"}.get(inputs, "inputs not recorded")
    return f"{count} {what}" if isinstance(count, int) else what


def artifact_record(result: BenchResult) -> dict:
    """One entry of report.json's "artifacts"; accuracy is a top-1 fraction in [0, 1] or null;
    inputs "real clips" or "random"; parity the conversion's check (with its "inputs") or null."""
    parity = parity_record(result)
    return {
        "name": result.name,
        "precision": result.precision,
        "size_bytes": int(result.size_bytes),
        "accuracy": finite_or_none(result.accuracy),
        "latency_ms": {key: finite_or_none(getattr(result.latency_ms, key)) for key in LATENCY_KEYS},
        "init_ms": finite_or_none(result.init_ms),
        "first_inference_ms": finite_or_none(result.first_inference_ms),
        "peak_rss_mb": finite_or_none(result.peak_rss_mb),
        "threads": int(result.threads),
        "runtime": result.runtime,
        "device": result.device,
        "inputs": input_source(result),
        "parity": None if parity is None else {k: parity.get(k) for k in PARITY_KEYS if k in parity},
    }


def _number(value: float | None, digits: int = 2) -> str:
    value = finite_or_none(value)
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    value = finite_or_none(value)
    if value is None:
        return NOT_AVAILABLE
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[BenchResult], str]
    numeric: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("name", lambda r: r.name, numeric=False),
    Column("precision", lambda r: r.precision, numeric=False),
    Column("size KB", lambda r: _number(r.size_bytes / 1024, 1)),
    Column("accuracy %", lambda r: _number(None if r.accuracy is None else 100 * r.accuracy, 1)),
    Column("p50 ms", lambda r: _ms(r.latency_ms.p50)),
    Column("p90 ms", lambda r: _ms(r.latency_ms.p90)),
    Column("p99 ms", lambda r: _ms(r.latency_ms.p99)),
    Column("init ms", lambda r: _ms(r.init_ms)),
    Column("first ms", lambda r: _ms(r.first_inference_ms)),
    Column("peak RSS MB", lambda r: _number(r.peak_rss_mb, 1)),
    Column("inputs", input_source, numeric=False),
    Column("parity", parity_text, numeric=False),
)


def measured_on(results: Sequence[BenchResult]) -> list[str]:
    """Distinct 'device, runtime, N threads' settings, in order of first appearance."""
    seen = dict.fromkeys(f"{r.device}, {r.runtime}, {r.threads} threads" for r in results)
    return list(seen)


# What Markdown would read as raw HTML (a tag, comment, declaration or autolink) or an entity.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def markdown_escape(text: object) -> str:
    """Text safe inside a Markdown table cell: no raw HTML, no cell breaks, one line; shown as typed.

    Markdown is not HTML: ">=" or "a & b" stay as they are, and only a "<" that would open a tag or
    a "&" that would start an entity gets Markdown's own backslash escape (rendered as the bare
    character), as does "|" (a cell break)."""
    escaped = str(text).replace("\\", "\\\\").replace("|", "\\|")
    escaped = _ENTITY.sub(r"\\&", _HTML_START.sub(r"\\<", escaped))
    return " ".join(escaped.splitlines())


def markdown_table(results: Sequence[BenchResult]) -> str:
    header = "| " + " | ".join(c.header for c in COLUMNS) + " |"
    rule = "|" + "|".join("---:" if c.numeric else "---" for c in COLUMNS) + "|"
    rows = ["| " + " | ".join(markdown_escape(c.cell(r)) for c in COLUMNS) + " |" for r in results]
    return "\n".join([header, rule, *rows])


def html_table(results: Sequence[BenchResult]) -> str:
    def cell(tag: str, column: Column, text: str) -> str:
        css = ' class="num"' if column.numeric else ""
        return f"<{tag}{css}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", c, c.header) for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(cell("td", c, c.cell(r)) for c in COLUMNS) + "</tr>" for r in results)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
