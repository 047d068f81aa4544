"""The spine's numbers in one run: `tfkit demo` wall time on the built-in default, float32 and int8
accuracy measured through the TFLite interpreter, their gap, sizes and latencies.
Goals: demo < 15 min (with install) on 2 cores, float accuracy >= 0.90, int8 within 0.02 of float.

    python benchmarks/demo_run.py --out out/demo --json out/demo_run.json [-- extra tfkit demo options]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _emit import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("extra", nargs="*", help="extra `tfkit demo` options, after --")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "tfkit.cli.main", "demo", "--out", str(args.out), "--force", *args.extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    report = json.loads((args.out / "report.json").read_text())
    rows = {a["precision"]: a for a in report["artifacts"]}
    train = json.loads(next(args.out.glob("*-train/manifest.json")).read_text())["history"][-1]
    steps = {}
    for mf in sorted(args.out.glob("*/manifest.json")):
        rec = json.loads(mf.read_text())["history"][-1]
        steps[mf.parent.name] = rec["duration_s"]
    f32, i8 = rows.get("float32", {}), rows.get("int8", {})
    result = {
        "demo_wall_s": round(wall, 1),
        "step_seconds": steps,
        "keras_val_accuracy": train["metrics"]["val_accuracy"],
        "val_clips": train["metrics"]["val_clips"],
        "float32_accuracy": f32.get("accuracy"),
        "int8_accuracy": i8.get("accuracy"),
        "int8_minus_float32_accuracy": (i8["accuracy"] - f32["accuracy"]) if f32 and i8 else None,
        "float32_p50_ms": f32.get("latency_ms", {}).get("p50"),
        "int8_p50_ms": i8.get("latency_ms", {}).get("p50"),
        "int8_over_float32_latency": (i8["latency_ms"]["p50"] / f32["latency_ms"]["p50"]) if f32 and i8 else None,
        "float32_size_bytes": f32.get("size_bytes"),
        "int8_size_bytes": i8.get("size_bytes"),
        "float32_over_int8_size": (f32["size_bytes"] / i8["size_bytes"]) if f32 and i8 else None,
        "seed": "0 (the demo's defaults)" if not args.extra else "see the command",
        "goals": {"float32_accuracy": ">= 0.90", "int8_minus_float32_accuracy": ">= -0.02",
                  "demo_wall_s": "<= 900"},
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
