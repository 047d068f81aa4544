"""A few seeded mutations of hand-built .tflite files through the real `tfkit check` and `tfkit
inspect` (subprocesses): no traceback, hang, crash or internal exception name, and every failure is
one `error:` line. The full run is benchmarks/fuzz_tflite.py (results/fuzz_tflite.json)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_tflite", ROOT / "benchmarks" / "fuzz_tflite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutants_are_reproducible_and_cover_every_kind(fuzz_module):
    seeds = fuzz_module.hand_built()
    first, again = fuzz_module.mutants(seeds, 14, seed=3), fuzz_module.mutants(seeds, 14, seed=3)
    assert first == again
    assert {kind for _, kind, _ in first} == set(fuzz_module.MUTATIONS)
    assert sum(data != seeds[name] for name, _, data in first) >= 12


def test_damaged_files_end_in_one_clean_error(fuzz_module, tmp_path):
    result = fuzz_module.fuzz(fuzz_module.hand_built(), 10, seed=7, timeout_s=120, jobs=2, work=tmp_path)
    assert result["runs"] == 20
    clean = {k: result[k] for k in ("tracebacks", "hangs", "crashes", "internal_names", "unexplained_failures",
                                    "repeated_error_prefix")}
    assert clean == dict.fromkeys(clean, 0), result["problems"]
    failed = sum(n for command in result["outcomes"].values() for outcome, n in command.items() if outcome != "ok")
    assert failed >= 5, result["outcomes"]  # the mutations do damage: most runs must refuse the file
