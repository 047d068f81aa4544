"""Write a benchmark report: report.json (the contract), report.md, a self-contained report.html
and latency_accuracy.png, each written atomically (temp file + rename).

report.json = {"title", "created" (ISO 8601 UTC), "notes": {...}, "devices": [device, ...],
"artifacts": [record, ...]} with the record keys of `tfkit.report.table.ARTIFACT_KEYS`; each device is
{"label", "address", "name", "fingerprint", "summary", "runtime", "threads", "delegate",
"energy_source", "throttled"} and each record's "device_label" names its device. Results from one
device give today's table (one row per artifact); from several, a table of the devices and one row
per model with a column group per device.

Example:
    >>> paths = write_report(results, "out/09-report", title="TSM on Pixel 7", notes={"clips": 200})
    >>> paths.html
    PosixPath('out/09-report/report.html')
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tfkit.atomic import write_bytes_atomic
from tfkit.errors import UsageError
from tfkit.report.plots import latency_accuracy_png
from tfkit.report.table import (
    artifact_record,
    device_columns,
    device_key,
    fingerprint_summary,
    html_devices,
    html_table,
    markdown_devices,
    markdown_escape,
    markdown_table,
    measured_on,
)
from tfkit.types import BenchResult

PLOT_NAME = "latency_accuracy.png"
PLOT_ALT = "p50 latency vs top-1 accuracy, marker area = file size"
# Says what the "inputs" and "parity" columns mean, so that no number reads as more than it is.
INPUTS_NOTE = ("Latency and memory are timed on seeded random inputs of each model's input shape and type. "
               "Inputs: \"real clips\" = accuracy measured on the dataset's validation clips; \"random\" = no "
               "real data reached the model, so no accuracy. Parity: the conversion's check against its Keras "
               "source, and the inputs it ran on (on random inputs it proves the .tflite computes what the Keras "
               "model does, not that either is accurate).")


@dataclass(frozen=True)
class ReportPaths:
    """The files one report consists of."""

    json: Path
    markdown: Path
    html: Path
    plot: Path


def write_report(
    results: Sequence[BenchResult],
    out_dir: str | os.PathLike,
    *,
    title: str = "tfkit report",
    notes: dict | None = None,
) -> ReportPaths:
    """Write the four report files into `out_dir` (created if missing); return their paths."""
    results = list(results)
    if not results:
        raise UsageError("write_report got no benchmark results; run tfkit.bench.benchmark first.")
    for r in results:
        if not isinstance(r, BenchResult):
            raise UsageError(f"write_report takes BenchResult objects, got {type(r).__name__}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(out / "report.json", out / "report.md", out / "report.html", out / PLOT_NAME)
    notes = dict(notes or {})
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    devices = device_columns(results)
    labels = {d.key: d.label for d in devices}
    png = latency_accuracy_png(results, title=title,
                               devices=[labels[device_key(r)] for r in results] if len(devices) > 1 else None)
    document = {
        "title": title,
        "created": created,
        "notes": _json_safe(notes),
        "devices": [_json_safe(d.to_dict(results)) for d in devices],
        "artifacts": [artifact_record(r, labels[device_key(r)]) for r in results],
    }
    write_bytes_atomic(paths.plot, png)
    write_bytes_atomic(paths.json, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
    write_bytes_atomic(paths.markdown, render_markdown(results, title=title, created=created, notes=notes).encode())
    write_bytes_atomic(paths.html, render_html(results, png, title=title, created=created, notes=notes).encode())
    return paths


def device_lines(results: Sequence[BenchResult]) -> list[str]:
    """Plain sentences under the table: the one device's fingerprint (several devices have their
    table), each energy source, and why a result was flagged as throttled."""
    devices = device_columns(results)
    lines = []
    if len(devices) == 1:
        summary = fingerprint_summary(devices[0].fingerprint)
        lines.append(f"Device {devices[0].label}: " + "; ".join(f"{k} {v}" for k, v in summary.items()) + ".")
    lines += [f"Energy: {source}." for source in dict.fromkeys(r.energy_source for r in results)]
    labels = {d.key: d.label for d in devices}
    lines += [f"Throttled: {r.name} ({r.precision})" + (f" on {labels[device_key(r)]}" if len(devices) > 1 else "")
              + f": {r.throttle_reason}." for r in results if r.throttled]
    return lines


def render_markdown(results: Sequence[BenchResult], *, title: str, created: str, notes: dict) -> str:
    lines = [f"# {markdown_escape(title)}", "", f"Created {created}.", ""]
    lines += [f"Measured on: {markdown_escape(setting)}." for setting in measured_on(results)]
    if len(device_columns(results)) > 1:
        lines += ["", "## Devices", "", markdown_devices(results), "", "## Results"]
    lines += ["", markdown_table(results), ""]
    lines += [f"- {markdown_escape(line)}" for line in device_lines(results)]
    lines += ["", markdown_escape(INPUTS_NOTE), "", f"![{PLOT_ALT}]({PLOT_NAME})", ""]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- **{markdown_escape(key)}**: {markdown_escape(_note_text(value))}" for key, value in notes.items()]
        lines.append("")
    return "\n".join(lines)


def render_html(results: Sequence[BenchResult], png: bytes, *, title: str, created: str, notes: dict) -> str:
    esc = html.escape
    settings = "".join(f"<li>{esc(s)}</li>" for s in measured_on(results))
    devices = (f"<h2>Devices</h2>\n{html_devices(results)}\n<h2>Results</h2>"
               if len(device_columns(results)) > 1 else "")
    facts = "".join(f"<li>{esc(line)}</li>" for line in device_lines(results))
    notes_html = ""
    if notes:
        rows = "".join(f"<dt>{esc(str(k))}</dt><dd>{esc(_note_text(v))}</dd>" for k, v in notes.items())
        notes_html = f"<h2>Notes</h2>\n<dl>{rows}</dl>"
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; }}
th {{ background: #f3f3f3; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; margin-top: 1.5rem; }}
dt {{ font-weight: bold; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p>Created {esc(created)}. Measured on:</p>
<ul>{settings}</ul>
{devices}
{html_table(results)}
<ul>{facts}</ul>
<p>{esc(INPUTS_NOTE)}</p>
<img alt="{esc(PLOT_ALT)}" src="data:image/png;base64,{image}">
{notes_html}
</body>
</html>
"""


def _note_text(value: object) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_json_safe(value), sort_keys=True)
    return str(value)


def _json_safe(value: object) -> object:
    """Notes are free-form: NaN/inf become null, unknown types their str()."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)

