"""`tfkit inspect`: what a .tflite file carries (tfkit metadata, inputs, outputs, ops, the runtime
it needs), read in a child process since the file may come from anywhere.

Example:
    $ tfkit inspect out/05-int8 --json
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from tfkit.cli.common import tflite_file


def _tensor_line(t: dict) -> str:
    q = t["quantization"]
    quant = "" if q is None else (f", scale {q[0]:.6g} zero point {q[1]}" if isinstance(q, list)
                                  else f", per-channel ({len(q['scale'])} scales)")
    dynamic = f" (signature {t['shape_signature']})" if t["shape_signature"] != t["shape"] else ""
    return f"{t['name']}: {t['shape']}{dynamic} {t['dtype']}{quant}"


def summary(path: Path, info: dict) -> str:
    """The human block: one labelled line per fact."""
    rows = [("file", f"{path} ({info['size_bytes']:,} bytes, {info['subgraphs']} subgraph(s))")]
    meta = info["tfkit"]
    if meta is None:
        rows.append(("tfkit", "no tfkit metadata (not written by `tfkit convert`)"))
    else:
        labels, norm = meta["labels"], meta["normalization"] or "unknown (converted without a clip spec)"
        if meta["pixel_scale"] is not None:
            offset = meta["pixel_offset"]
            norm += f": x = pixel * {meta['pixel_scale']:.6g} {'-' if offset < 0 else '+'} {abs(offset):g}"
        rate = (f"{meta['fps']:g} fps" if meta["fps"] else
                f"every {meta['stride']} frame(s)" if meta["stride"] else "sampling not recorded")
        rows += [("labels", f"{', '.join(labels)} ({len(labels)})" if labels else "(none recorded)"),
                 ("normalization", norm),
                 ("clip", f"{meta['frames'] or '?'} frames of {meta['size'] or '?'} px, {rate}"),
                 ("form", f"{meta['form']}, precision {meta['precision']}"),
                 ("delegate", f"{meta['recommended_delegate']} (recommended)")]
        if meta["stream"]:
            s = meta["stream"]
            rows.append(("stream", f"frame in {s['frame_input']!r}, logits out {s['logits_output']!r}, "
                                   f"{len(s['states'])} state(s) <name>_in -> <name>_out"
                                   + (", requantize between steps" if s["requantize_states"] else "")))
    rows += [("input", _tensor_line(t)) for t in info["inputs"]]
    rows += [("output", _tensor_line(t)) for t in info["outputs"]]
    total = sum(op["count"] for op in info["ops"])
    rows.append(("ops", f"{total} ops: " + ", ".join(f"{op['name']} v{op['version']} x{op['count']}"
                                                     for op in info["ops"])))
    board = info["tflite_runtime_2_14"]
    rows += [("min runtime", info["min_runtime_version"] or "(not recorded)"),
             ("tflite-rt 2.14", f"{board['verdict']}: {board['reason']}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the summary.")
def inspect_cmd(model: Path, as_json: bool):
    """Show what MODEL (a .tflite file or a `tfkit convert` folder) carries: labels, normalization,
    frames, form, stream state layout, inputs/outputs, op versions and whether tflite-runtime 2.14
    (old boards) runs it. The file is parsed in a child process: a damaged one ends in one error line."""
    from tfkit.convert.metadata import describe_file

    path = tflite_file(model)
    info = describe_file(path)
    click.echo(json.dumps({"path": str(path), **info}, indent=2) if as_json else summary(path, info))
