"""`tfkit check MODEL.tflite --delegate gpu|nnapi|edgetpu|xnnpack|all [--json] [--data DATA]`:
per-op delegate coverage and a one-line verdict for any .tflite (tfkit's or not), read in a
child process. The GPU verdict is measured by LiteRT's own GPU accelerator where a Vulkan driver
exists (`"measured": true` in --json), else it follows the static rules.

Exit 0 whenever a verdict was reached (also "none"); 2 when the file is unusable.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from tfkit.cli.common import tflite_file

PARITY_CLIPS = 8


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--delegate", "-d", "delegates", multiple=True, default=("xnnpack",), show_default=True,
              help="xnnpack, gpu, nnapi, edgetpu (or a plug-in's name); repeat it, or 'all'.")
@click.option("--android-api", type=click.IntRange(27, 40), default=30, show_default=True,
              help="NNAPI only: the Android API level targeted.")
@click.option("--nnapi-max-partitions", type=int, default=3, show_default=True,
              help="NNAPI only: partitions the delegate takes (its max_number_delegated_partitions; 0: no limit).")
@click.option("--static", "static", is_flag=True,
              help="GPU: the rule tables only, even where LiteRT's GPU accelerator could be asked.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="GPU: a dataset artifact; its first validation clips run on the GPU accelerator and on the "
                   "CPU, and the largest |logit difference| and top-1 agreement are reported.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a list under 'delegates' for several).")
def check(model, delegates, android_api, nnapi_max_partitions, static, data_dir, as_json):
    """Per-op coverage of MODEL (a .tflite or a tfkit tflite artifact folder) by each delegate."""
    from tfkit.delegates import CheckOptions, check_file, get_delegate

    path = tflite_file(model)
    clips = _parity_clips(data_dir) if data_dir is not None else None
    options = CheckOptions(android_api=android_api, nnapi_max_partitions=nnapi_max_partitions, measure=not static)
    results = check_file(path, list(delegates), options=options)
    payloads = [{"model": str(path), **c.to_dict(), **get_delegate(c.delegate).info()} for c in results]
    if clips is not None:
        from tfkit.delegates.gpu_measured import parity_on_clips

        parity = parity_on_clips(path, clips)
        for p in payloads:
            if p["delegate"] == "gpu":
                p["gpu_parity"] = parity
    if as_json:
        click.echo(json.dumps(payloads[0] if len(payloads) == 1 else {"model": str(path), "delegates": payloads},
                              indent=2))
        return
    for p in payloads:
        click.echo(_render(p))


def _parity_clips(data_dir: Path):
    """The dataset's first validation clips, normalized as the model was trained."""
    from tfkit.cli.common import HOW_DATA, load_artifact
    from tfkit.data import ClipSet, normalize
    from tfkit.types import ArtifactKind

    art = load_artifact(data_dir, ArtifactKind.DATASET, how=HOW_DATA)
    return normalize(ClipSet.load_npz(art.file("val")).x[:PARITY_CLIPS], art.manifest.spec["clip"]["normalization"])


def _render(p: dict) -> str:
    kind = "measured" if p.get("measured") else "static"
    lines = [f"{p['delegate']}: {p['summary']}",
             f"  decided by: {p['source']} ({kind}); partitions: {p['partitions']}"]
    if p.get("backend"):
        lines.append(f"  backend: {p['backend']}")
    width = max((len(r["op"]) for r in p["ops"]), default=2)
    for r in p["ops"]:
        mark = "yes" if r["delegated"] else "NO "
        why = "" if r["delegated"] else f"  {r['reason']}" + (f" [{r['example']}]" if r.get("example") else "")
        lines.append(f"  {r['op']:<{width}} x{r['count']:<4} {mark}{why}")
    lines += [f"  note: {n}" for n in p["notes"]]
    lines += [f"  static rules disagree: {d}" for d in p.get("disagreements", ())]
    if "gpu_parity" in p:
        g = p["gpu_parity"]
        lines.append(f"  GPU parity: {g['error']}" if "error" in g else
                     f"  GPU parity on {g['clips']} clips: max |logit diff| {g['max_abs_logit_diff']:.4g}, "
                     f"top-1 agreement {g['top1_agreement']:.3f} (GPU vs CPU; GPU arithmetic: {g['gpu_arithmetic']})")
    lines.append(f"  benchmark_model: {' '.join(p['benchmark_flags'])}")
    lines.append(f"  android: {p['android_accelerator']}")
    lines.append(f"  load on a host: {p['load']}")
    return "\n".join(lines)
