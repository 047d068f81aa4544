"""benchmark_model's `--enable_op_profiling` tables (and the CompiledModel tool's `--use_profiler` ones),
read into rows: per node type and per node, with the tool's own column names mapped to tfkit's.

Two layouts exist: TFLite's profile_summarizer prints tab-separated columns (per-type avg ms is per
run, times called per run); LiteRT's profiler_summarizer prints space-aligned ones (per-type avg ms
is per call, times called in all). `read_op_tables` says which it saw.

Example:
    >>> tables, layout = read_op_tables([(None, line) for line in text.splitlines()])   # doctest: +SKIP
    >>> tables["run/primary/Summary by node type"][0]["node_type"]
    'CONV_2D'
"""
from __future__ import annotations

import math
import re
from typing import Any

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-?nan|-?inf"
OP_COLUMNS = {"[node type]": "node_type", "[Node type]": "node_type", "[start]": "start_ms",
              "[first]": "first_ms", "[avg ms]": "avg_ms", "[%]": "percent", "[avg %]": "percent",
              "[cdf%]": "cdf_percent", "[cdf %]": "cdf_percent", "[mem KB]": "mem_kb",
              "[times called]": "times_called", "[count]": "count", "[Name]": "name"}

TABLE = re.compile(r"=+ (?P<title>Run Order|Top by Computation Time|Top by Memory Use|Summary by node type|"
                   r"Delegate Statistics) =+")


class Invalid(ValueError):
    """The output is there but not whole or not consistent."""


def number(text: str, what: str) -> float:
    """A number the tool printed: finite and >= 0, else Invalid (a cut or garbled output)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise Invalid(f"{what} is {text!r}, not a finite number >= 0")
    return value


def read_op_tables(lines) -> tuple[dict[str, list[dict]], str | None]:
    """Every op-profiling table, keyed 'phase/graph/title' (phase 'init' or 'run'; graph 'primary',
    'subgraph N' or 'delegate'), and whose layout they have: 'tflite' (tab-separated; per-type avg ms
    is per run, times called per run) or 'litert' (the CompiledModel profiler, space-aligned; per-type
    avg ms is per call, times called in all). A row that does not fit its header means a cut output."""
    tables: dict[str, list[dict]] = {}
    phase, graph, columns, key, layout = "run", "primary", None, "", None
    for _, message in lines:
        text = message.strip()
        if text in ("Profiling Info for Benchmark Initialization:",
                    "Operator-wise Profiling Info for Regular Benchmark Runs:"):
            phase, graph, columns = ("init" if text.startswith("Profiling") else "run"), "primary", None
        elif sub := re.fullmatch(r"(?:Subgraph \(index: (\d+), name: .*\)|Primary graph \(name: .*\)) "
                                 r"(?:profile|summary):", text):
            graph, columns = (f"subgraph {sub[1]}" if sub[1] else "primary"), None
        elif text == "Delegate internal:":
            graph, columns = "delegate", None
        elif title := TABLE.fullmatch(text):
            key, columns = f"{phase}/{graph}/{title['title']}", []
            tables[key] = []
        elif columns == []:  # the header line under a title
            layout = "tflite" if message.startswith("\t") else "litert"
            columns = ([c.strip() for c in message.split("\t")[1:]] if layout == "tflite"
                       else re.findall(r"\[[^\]]+\]", message)) or None
            if columns is None:  # e.g. the CompiledModel profiler's "Delegate Statistics": not read
                del tables[key]
        elif columns and text:
            tables[key].append(op_row(columns, message, layout))
        elif columns is not None and not text:
            columns = None
    return tables, layout


def op_row(columns: list[str], message: str, layout: str) -> dict:
    fields = [OP_COLUMNS.get(c, c.strip("[]").replace(" ", "_")) for c in columns]
    if layout == "tflite":
        cells = message.split("\t")[1:] if message.startswith("\t") else []
    else:  # right-aligned columns; only the node type (first) may hold spaces
        shape = {"node_type": r"(.+?)", "name": r"(\S+)", "percent": rf"((?:{NUM})%)",
                 "cdf_percent": rf"((?:{NUM})%)"}
        match = re.fullmatch(r"\s*" + r"\s+".join(shape.get(f, r"(\S+)") for f in fields) + r"\s*", message)
        cells = list(match.groups()) if match else []
    if len(cells) != len(columns):
        raise Invalid(f"the op-profiling row {message.strip()!r} does not fit its {len(columns)} columns")
    row: dict[str, Any] = {}
    for column, field, cell in zip(columns, fields, (c.strip() for c in cells)):
        if field in ("node_type", "name"):
            row[field] = cell
            continue
        try:
            value = number(cell.rstrip("%"), f"op-profiling {column}")
        except ValueError:
            if column not in OP_COLUMNS:  # a column this parser does not know: kept as printed
                row[field] = cell
                continue
            raise Invalid(f"the op-profiling row {message.strip()!r} has {cell!r} under {column}") from None
        row[field] = int(value) if field in ("count", "times_called") else value
    return row


