"""Start-up cost of the CLI and the package: median wall time of `tfkit --help` and `import tfkit`,
and whether TensorFlow got imported. Goal: `tfkit --help` median < 0.5 s, no TensorFlow.

    python benchmarks/cli_startup.py --runs 15 --json out/cli_startup.json
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _emit import emit


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    py = sys.executable
    help_s = median_seconds([py, "-m", "tfkit.cli.main", "--help"], args.runs)
    import_s = median_seconds([py, "-c", "import tfkit"], args.runs)
    bare_s = median_seconds([py, "-c", "pass"], args.runs)
    tf_loaded = subprocess.run(
        [py, "-c", "import sys, tfkit, tfkit.cli.main; print('tensorflow' in sys.modules)"],
        check=True, capture_output=True, text=True).stdout.strip() == "True"
    result = {"help_median_s": round(help_s, 4), "import_median_s": round(import_s, 4),
              "python_bare_median_s": round(bare_s, 4), "help_goal_s": 0.5,
              "help_ratio_to_goal": round(help_s / 0.5, 3), "tensorflow_imported": tf_loaded,
              "runs": args.runs}
    emit(result, args.json)


if __name__ == "__main__":
    main()
