"""`tfkit check MODEL.tflite --delegate gpu|nnapi|edgetpu|xnnpack|all [--json]`: per-op delegate
coverage and a one-line verdict for any .tflite (tfkit's or not), read in a child process.

Exit 0 whenever a verdict was reached (also "none"); 2 when the file is unusable.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from tfkit.cli.common import tflite_file


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--delegate", "-d", "delegates", multiple=True, default=("xnnpack",), show_default=True,
              help="xnnpack, gpu, nnapi, edgetpu (or a plug-in's name); repeat it, or 'all'.")
@click.option("--android-api", type=click.IntRange(27, 40), default=30, show_default=True,
              help="NNAPI only: the Android API level targeted.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a list under 'delegates' for several).")
def check(model, delegates, android_api, as_json):
    """Per-op coverage of MODEL (a .tflite or a tfkit tflite artifact folder) by each delegate."""
    from tfkit.delegates import check_file, get_delegate

    path = tflite_file(model)
    results = check_file(path, list(delegates), android_api=android_api)
    payloads = [{"model": str(path), **c.to_dict(), **get_delegate(c.delegate).info()} for c in results]
    if as_json:
        click.echo(json.dumps(payloads[0] if len(payloads) == 1 else {"model": str(path), "delegates": payloads},
                              indent=2))
        return
    for p in payloads:
        click.echo(_render(p))


def _render(p: dict) -> str:
    lines = [f"{p['delegate']}: {p['summary']}", f"  decided by: {p['source']}; partitions: {p['partitions']}"]
    width = max((len(r["op"]) for r in p["ops"]), default=2)
    for r in p["ops"]:
        mark = "yes" if r["delegated"] else "NO "
        why = "" if r["delegated"] else f"  {r['reason']}" + (f" [{r['example']}]" if r.get("example") else "")
        lines.append(f"  {r['op']:<{width}} x{r['count']:<4} {mark}{why}")
    lines += [f"  note: {n}" for n in p["notes"]]
    lines.append(f"  benchmark_model: {' '.join(p['benchmark_flags'])}")
    lines.append(f"  android: {p['android_accelerator']}")
    lines.append(f"  load on a host: {p['load']}")
    return "\n".join(lines)
