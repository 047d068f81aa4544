"""Delegate coverage of every zoo model x form x precision x delegate, as one generated page.

Every zoo backbone x temporal module (causal, so each also streams) is converted in every
precision, clip and streaming forms, and each .tflite is checked against every delegate
(`tfkit.delegates`: XNNPACK measured in this host's LiteRT; GPU measured by LiteRT's own GPU
accelerator where a Vulkan driver exists (SwiftShader from `apt-get install chromium` will do),
with the static rules checked against it; NNAPI / Edge TPU by their rule tables, or by
edgetpu_compiler when it is on PATH). Untrained weights with BatchNorm statistics from random
clips: which ops a delegate takes does not depend on training. Hold-out rows: tiny
third-party-like models built to trip one rule each (tests/unit/delegate_models.py).

    python benchmarks/delegate_coverage.py --quick --json out/coverage.json --page docs/delegate_coverage.md
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _emit import emit

QUICK = {"frames": 4, "size": 32, "alpha": 0.35, "stages": 3}
FULL = {"frames": 8, "size": 128, "alpha": 1.0, "stages": 7}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny models (4 frames, 32 px): ~5 min on 2 cores")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--page", type=Path, default=None, help="write the Markdown page here")
    args = ap.parse_args()
    result = measure(QUICK if args.quick else FULL)
    result["quick"] = args.quick
    if args.page:
        args.page.parent.mkdir(parents=True, exist_ok=True)
        args.page.write_text(render(result))
    emit(result, args.json)


HOLDOUT = ("image_segmenter", "transpose_conv_bias_segmenter", "sparse_weights_model", "unknown_custom_op_model",
           "clip_model_5d")


def _holdout() -> list[tuple[dict, bytes]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.unit import delegate_models

    return [({"model": name, "family": "hold-out", "temporal": "", "form": "third-party-like", "precision": "float32",
              "error": None}, getattr(delegate_models, name)()) for name in HOLDOUT]


def _cov(c) -> dict:
    return {"verdict": c.verdict, "ops_total": c.ops_total, "ops_delegated": c.ops_delegated,
            "partitions": c.partitions, "source": c.source, "measured": c.measured, "backend": c.backend,
            "disagreements": list(c.disagreements),
            "fallback": {f"{r.op}: {r.reason}": r.count for r in c.ops if not r.delegated}}


def check_row(fb: bytes, delegates: list[str]) -> dict:
    """Every delegate as `tfkit check` decides it, plus the GPU's static rules on their own (and
    how long the measured GPU check took next to the static one)."""
    from tfkit.delegates import CheckOptions, check_bytes

    cov = {c.delegate: _cov(c) for c in check_bytes(fb, [d for d in delegates if d != "gpu"])}
    t0 = time.perf_counter()
    (static,) = check_bytes(fb, ["gpu"], options=CheckOptions(measure=False))
    t1 = time.perf_counter()
    (gpu,) = check_bytes(fb, ["gpu"])
    t2 = time.perf_counter()
    cov["gpu"], cov["gpu_static"] = _cov(gpu), _cov(static)
    cov["gpu"]["check_s"], cov["gpu_static"]["check_s"] = round(t2 - t1, 3), round(t1 - t0, 3)
    return cov


def measure(p: dict) -> dict:
    from tfkit.convert.sweep import convert_model, zoo_specs
    from tfkit.delegates import delegate_names
    from tfkit.models.spec import VideoModelSpec

    t0 = time.perf_counter()
    base = VideoModelSpec(num_classes=5, frames=p["frames"], size=p["size"], alpha=p["alpha"], stages=p["stages"])
    clips = np.random.default_rng(0).uniform(-1, 1, (8, p["frames"], p["size"], p["size"], 3)).astype(np.float32)
    delegates = [d for d in delegate_names() if d in ("xnnpack", "gpu", "nnapi", "edgetpu")]
    pairs = [pair for spec in zoo_specs(base) for pair in convert_model(spec, clips)] + _holdout()
    rows = []
    for row, fb in pairs:
        row = {k: row[k] for k in ("model", "family", "temporal", "form", "precision", "error")}
        if fb is not None:
            row["size_bytes"] = len(fb)
            row["coverage"] = check_row(fb, delegates)
        print(f"[coverage] {row['model']} {row['form']} {row['precision']}: "
              + (row["error"] or ", ".join(f"{d} {v['ops_delegated']}/{v['ops_total']}"
                                           for d, v in row["coverage"].items())), flush=True)
        rows.append(row)
    return {"params": p, "delegates": [*delegates, "gpu_static"], "rows": rows, "agreement": agreement(rows),
            "total_s": round(time.perf_counter() - t0, 1)}


def agreement(rows: list[dict]) -> dict:
    """How often the static GPU rules match the measured accelerator: per op (no disagreement
    against the rules for the backend that ran) and by verdict and op count (the classic rules)."""
    out = {}
    for group, keep in (("zoo", lambda r: r["family"] != "hold-out"), ("hold-out", lambda r: r["family"] == "hold-out")):
        measured = [r for r in rows if keep(r) and not r.get("error") and r["coverage"]["gpu"]["measured"]]
        same = lambda r: (r["coverage"]["gpu"]["verdict"], r["coverage"]["gpu"]["ops_delegated"]) == \
            (r["coverage"]["gpu_static"]["verdict"], r["coverage"]["gpu_static"]["ops_delegated"])
        out[group] = {"measured": len(measured),
                      "static_models": sum(not r.get("error") for r in rows if keep(r)),
                      "agree_per_op_ml_drift_rules": sum(not r["coverage"]["gpu"]["disagreements"] for r in measured),
                      "agree_verdict_and_count_classic_rules": sum(same(r) for r in measured),
                      "disagreeing": [f"{r['model']} {r['form']} {r['precision']}" for r in measured
                                      if r["coverage"]["gpu"]["disagreements"]]}
        times = [r["coverage"]["gpu"]["check_s"] - r["coverage"]["gpu_static"]["check_s"] for r in measured]
        out[group]["measured_adds_s_median"] = round(float(np.median(times)), 3) if times else None
        out[group]["measured_adds_s_max"] = round(max(times), 3) if times else None
    return out


def _cell(cov: dict) -> str:
    mark = {"full": "full", "partial": "partial", "none": "none"}[cov["verdict"]]
    return f"{mark} {cov['ops_delegated']}/{cov['ops_total']}" + (" (m)" if cov.get("measured") and
                                                                  "accelerator" in cov.get("source", "") else "")


def render(result: dict) -> str:
    """The Markdown page: one row per model x form x precision, one column per delegate, then the
    reasons ops fall back, most frequent first, per delegate."""
    delegates = result["delegates"]
    p = result["params"]
    intro = (f"Generated by `python benchmarks/delegate_coverage.py{' --quick' if result.get('quick') else ''} "
             f"--page docs/delegate_coverage.md` ({p['frames']} frames, {p['size']} px, alpha {p['alpha']}, "
             f"{p['stages']} stages). Each cell: verdict, ops the delegate runs / ops in the graph. XNNPACK is "
             "measured in this host's LiteRT; `gpu` is measured ((m)) by LiteRT's own GPU accelerator (ML Drift "
             "over WebGPU, on Vulkan: SwiftShader here) where a Vulkan driver exists, and `gpu_static` is what the "
             "rule tables say for the classic GPU delegate (OpenCL on Android); NNAPI (Android 11 / API 30, at "
             "most 3 partitions as the delegate's default) and Edge TPU follow `tfkit.delegates`' rule tables "
             "(edgetpu_compiler's own log when it is installed). The hold-out rows are tiny third-party-like "
             "models built to trip one rule each. `tfkit check MODEL.tflite --delegate NAME` gives the per-op "
             "table for any file.")
    lines = ["# Delegate coverage of the model zoo", "", intro, "",
             "| model | form | precision | " + " | ".join(delegates) + " |",
             "|---|---|---|" + "---|" * len(delegates)]
    reasons: dict[str, Counter] = {d: Counter() for d in delegates}
    for r in result["rows"]:
        if r.get("error"):
            cells = [f"refused by the converter: {r['error'][:80]}"] + [""] * (len(delegates) - 1)
        else:
            cells = [_cell(r["coverage"][d]) for d in delegates]
            for d in delegates:
                reasons[d].update(r["coverage"][d]["fallback"])
        lines.append(f"| {r['model']} | {r['form']} | {r['precision']} | " + " | ".join(cells) + " |")
    lines += ["", "## Static GPU rules against the measured accelerator", "",
              ("Where ML Drift refuses more than the classic delegate's checks (DENSIFY; int16 ADD/MUL with a "
              "constant operand) or takes more (int16 ADD, MUL, PAD, RESHAPE), `tfkit.delegates.gpu` keeps it as "
              "data; those rows were found by these measurements, so agreement on the zoo says the rules now "
              "describe the accelerator, not that they predicted it. A measured `tfkit check` lists any "
              "disagreement it finds."), ""]
    for group, a in result.get("agreement", {}).items():
        lines.append(f"- {group}: {a['measured']} of {a['static_models']} models measured; the static rules for the "
                     f"backend that ran put the same ops on the GPU in {a['agree_per_op_ml_drift_rules']}; the "
                     f"classic delegate's rules give the same verdict and op count in "
                     f"{a['agree_verdict_and_count_classic_rules']}; a measured check added "
                     f"{a['measured_adds_s_median']} s (median, max {a['measured_adds_s_max']} s) to the static one"
                     + (f"; disagreeing: {', '.join(a['disagreeing'])}" if a["disagreeing"] else ""))
    lines += ["", "## Why ops fall back (op: reason, total count over the table)", ""]
    for d in delegates:
        lines.append(f"### {d}")
        lines += [f"- {reason} (x{n})" for reason, n in reasons[d].most_common(8)] or ["- nothing falls back"]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
