"""docs/results.md is generated from benchmarks/results/*.json and must not go stale."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _page_module():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "benchmarks" / "results_page.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["results_page"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_results_page_is_current():
    page = _page_module()
    assert page.main(["--check"]) == 0, "docs/results.md is stale: run `python benchmarks/results_page.py`"


def test_check_fails_on_a_changed_result(tmp_path):
    page = _page_module()
    results, out = tmp_path / "results", tmp_path / "results.md"
    results.mkdir()
    (results / "zoo_quick.json").write_text(json.dumps({"ratio": 0.4, "goals": {"ratio": "<= 0.5"}}))
    assert page.main(["--results", str(results), "--page", str(out)]) == 0
    assert page.main(["--results", str(results), "--page", str(out), "--check"]) == 0
    (results / "zoo_quick.json").write_text(json.dumps({"ratio": 0.6, "goals": {"ratio": "<= 0.5"}}))
    assert page.main(["--results", str(results), "--page", str(out), "--check"]) == 1


def test_page_names_command_seed_host_and_goal_verdicts(tmp_path):
    page = _page_module()
    (tmp_path / "custom.json").write_text(json.dumps({
        "command": "python benchmarks/x.py --quick", "measured_at": "2026-12-06T12:00:00+00:00", "seed": 3,
        "host": {"cpu": "Test CPU", "cpu_count": 2, "cpu_flags": ["avx2"], "python": "3.11.7"},
        "cut": 0.75, "drop": 0.03, "flag": True, "nested": {"skipped": 1},
        "goals": {"cut": ">= 0.7", "drop": "<= 0.02", "flag": "true"}}))
    text = page.render(tmp_path)
    assert "python benchmarks/x.py --quick" in text and "2026-12-06T12:00:00+00:00" in text
    assert "- seed: 3" in text and "Test CPU x2 (avx2)" in text
    assert "| `cut` | 0.75 | >= 0.7 | met |" in text
    assert "| `drop` | 0.03 | <= 0.02 | missed |" in text
    assert "| `flag` | True | true |  |" in text  # not a numeric goal: no verdict claimed
    assert "nested" not in text


def test_old_results_say_what_was_not_recorded(tmp_path):
    page = _page_module()
    (tmp_path / "pruning_quick.json").write_text(json.dumps({"latency_cut": 0.7}))
    text = page.render(tmp_path)
    assert "python benchmarks/pruning.py --quick (inferred from the file name)" in text
    assert "- measured: not recorded" in text and "- seed: not recorded" in text
