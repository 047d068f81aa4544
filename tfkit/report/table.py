"""The report's rows: one JSON record per artifact (a public contract) and the same rows as
Markdown and HTML tables, one row per artifact on one device; with results from several devices,
one row per model with a column group per device, and a table of what each device is. Names are
user input, so every cell is escaped for its format.

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
from pathlib import Path

from tfkit.types import BenchResult

# The keys of each entry of report.json's "artifacts" list. Public contract: add, never rename.
ARTIFACT_KEYS = (
    "name", "precision", "size_bytes", "accuracy", "latency_ms", "init_ms", "first_inference_ms",
    "peak_rss_mb", "threads", "runtime", "device", "inputs", "parity",
    "delegate", "energy_mj_per_inference", "energy_source", "throttled", "throttle_reason", "device_label",
)
# Which bench run a result came from, set by the report step when it reads several bench folders.
BENCH_RUN = "bench_run"
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


def artifact_record(result: BenchResult, device_label: str | None = None) -> dict:
    """One entry of report.json's "artifacts"; accuracy is a top-1 fraction in [0, 1] or null;
    inputs "real clips" or "random"; parity the conversion's check (with its "inputs") or null;
    energy in mJ per inference or null, with its source (or why there is none); device_label the
    column of report.json's "devices" it belongs to."""
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
        "delegate": result.delegate,
        "energy_mj_per_inference": finite_or_none(result.energy_mj_per_inference),
        "energy_source": result.energy_source,
        "throttled": result.throttled,
        "throttle_reason": result.throttle_reason,
        "device_label": device_label if device_label is not None else device_columns([result])[0].label,
    }


def _energy(value: float | None) -> str:
    value = finite_or_none(value)
    return NOT_AVAILABLE if value is None else f"{value:.3g}"


def throttled_text(result: BenchResult) -> str:
    return {True: "yes", False: "no"}.get(result.throttled, "not checked")


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
    Column("delegate", lambda r: r.delegate, numeric=False),
    Column("energy mJ", lambda r: _energy(r.energy_mj_per_inference)),
    Column("throttled", throttled_text, numeric=False),
)
# With several devices: the model's columns once, then these for each device.
MODEL_COLUMNS = COLUMNS[:3]
DEVICE_METRICS: tuple[Column, ...] = (
    COLUMNS[3], COLUMNS[4], COLUMNS[5], COLUMNS[7], COLUMNS[9],
    Column("energy mJ", lambda r: _energy(r.energy_mj_per_inference)),
)


@dataclass(frozen=True)
class DeviceColumn:
    """One device (one bench run on it) of a report: its label, address and fingerprint."""

    label: str
    address: str
    name: str | None
    fingerprint: dict | None
    key: tuple

    def to_dict(self, results: Sequence[BenchResult]) -> dict:
        mine = [r for r in results if device_key(r) == self.key]
        return {"label": self.label, "address": self.address, "name": self.name, "fingerprint": self.fingerprint,
                "summary": fingerprint_summary(self.fingerprint),
                "runtime": _joined(r.runtime for r in mine), "threads": _joined(str(r.threads) for r in mine),
                "delegate": _joined(r.delegate for r in mine), "energy_source": _joined(r.energy_source for r in mine),
                "throttled": [f"{r.name} ({r.precision})" for r in mine if r.throttled]}


def device_key(result: BenchResult) -> tuple:
    return (result.device, result.device_name, result.extra.get(BENCH_RUN))


def device_columns(results: Sequence[BenchResult]) -> list[DeviceColumn]:
    """The distinct devices (a device benchmarked twice: once per bench run), in order of first
    appearance, labelled by name or address; labels that would repeat add the runtime, then the run."""
    firsts = list({device_key(r): r for r in reversed(results)}.items())[::-1]
    labels = [r.device_name or r.device for _, r in firsts]
    for extend in (lambda r: r.runtime, lambda r: Path(str(r.extra.get(BENCH_RUN) or "")).name):
        repeated = {label for label in labels if labels.count(label) > 1}
        labels = [f"{label} · {extend(r)}" if label in repeated and extend(r) else label
                  for label, (_, r) in zip(labels, firsts)]
    labels = [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    return [DeviceColumn(label, r.device, r.device_name, r.fingerprint, key) for label, (key, r) in zip(labels, firsts)]


def _joined(values) -> str:
    return ", ".join(dict.fromkeys(values))


# The rows of the devices table: what each device is, then how it ran.
SUMMARY_KEYS = ("CPU / board", "cores", "kernel / API", "max MHz", "governor")


def fingerprint_summary(fingerprint: object) -> dict[str, str]:
    """The fingerprint's headline, as text: CPU / board, cores, kernel / API, max MHz, governor.
    Whatever shape a device kind returns, nothing here raises: a missing or odd field reads "n/a"."""
    if not isinstance(fingerprint, dict):
        return dict.fromkeys(SUMMARY_KEYS, "not recorded")
    if fingerprint.get("error") is not None:
        return {**dict.fromkeys(SUMMARY_KEYS, NOT_AVAILABLE), "CPU / board": f"fingerprint failed: {fingerprint['error']}"}

    def text(key: str) -> str | None:
        value = fingerprint.get(key)
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "" else None

    cpu = text("board") or text("soc") or text("cpu_model") or "unknown CPU"
    if text("board") and text("cpu_model"):
        cpu += f" ({text('cpu_model')})"
    api = f"Android API {text('android_api')}" if text("android_api") else " ".join(
        t for t in (text("os"), text("kernel")) if t) or NOT_AVAILABLE
    if text("abi"):
        api += f", {text('abi')}"
    mhz, governors = fingerprint.get("max_mhz"), fingerprint.get("governors")
    return {
        "CPU / board": cpu,
        "cores": text("cores") or NOT_AVAILABLE,
        "kernel / API": api,
        "max MHz": "/".join(str(m) for m in mhz) if isinstance(mhz, list) and mhz else "not exposed",
        "governor": "/".join(str(g) for g in governors) if isinstance(governors, list) and governors else "not exposed",
    }


def measured_on(results: Sequence[BenchResult]) -> list[str]:
    """Distinct 'device, runtime, N threads' settings, in order of first appearance."""
    seen = dict.fromkeys(f"{f'{r.device_name} ({r.device})' if r.device_name else r.device}, {r.runtime}, "
                         f"{r.threads} threads" for r in results)
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


def table_rows(results: Sequence[BenchResult]) -> tuple[list[tuple[str, bool]], list[list[str]]]:
    """(header cells with whether numeric, rows of cells): one row per result on one device; with
    several devices, one row per (name, precision) and each device's metrics side by side."""
    columns = device_columns(results)
    if len(columns) <= 1:
        return [(c.header, c.numeric) for c in COLUMNS], [[c.cell(r) for c in COLUMNS] for r in results]
    header = [(c.header, c.numeric) for c in MODEL_COLUMNS]
    header += [(f"{m.header} · {d.label}", m.numeric) for d in columns for m in DEVICE_METRICS]
    by_model: dict[tuple, dict[tuple, BenchResult]] = {}
    for r in results:
        by_model.setdefault((r.name, r.precision), {}).setdefault(device_key(r), r)
    rows = []
    for cells in by_model.values():
        first = next(iter(cells.values()))
        row = [c.cell(first) for c in MODEL_COLUMNS]
        for d in columns:
            r = cells.get(d.key)
            row += [m.cell(r) if r is not None else "not run" for m in DEVICE_METRICS]
        rows.append(row)
    return header, rows


def device_table_rows(results: Sequence[BenchResult]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the table of devices: one column per device, one row per fact."""
    columns = device_columns(results)
    records = [c.to_dict(results) for c in columns]
    rows = [["address", *(c.address for c in columns)]]
    rows += [[key, *(rec["summary"][key] for rec in records)] for key in SUMMARY_KEYS]
    rows += [[key.replace("_", " "), *(rec[key] for rec in records)]
             for key in ("runtime", "threads", "delegate", "energy_source")]
    rows.append(["throttled", *(", ".join(rec["throttled"]) or "no model flagged" for rec in records)])
    return ["", *(c.label for c in columns)], rows


def markdown_grid(header: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]]) -> str:
    top = "| " + " | ".join(markdown_escape(h) for h, _ in header) + " |"
    rule = "|" + "|".join("---:" if numeric else "---" for _, numeric in header) + "|"
    body = ["| " + " | ".join(markdown_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join([top, rule, *body])


def html_grid(header: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]]) -> str:
    def cell(tag: str, numeric: bool, text: str) -> str:
        css = ' class="num"' if numeric else ""
        return f"<{tag}{css}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", numeric, h) for h, numeric in header)
    body = "\n".join("<tr>" + "".join(cell("td", numeric, text) for (_, numeric), text in zip(header, row)) + "</tr>"
                     for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def markdown_table(results: Sequence[BenchResult]) -> str:
    return markdown_grid(*table_rows(results))


def html_table(results: Sequence[BenchResult]) -> str:
    return html_grid(*table_rows(results))


def _text_header(header: Sequence[str]) -> list[tuple[str, bool]]:
    return [(h, False) for h in header]


def markdown_devices(results: Sequence[BenchResult]) -> str:
    header, rows = device_table_rows(results)
    return markdown_grid(_text_header(header), rows)


def html_devices(results: Sequence[BenchResult]) -> str:
    header, rows = device_table_rows(results)
    return html_grid(_text_header(header), rows)
