"""benchmarks/repair.py as the zoo benchmark's "repair" part: the full-size spec is the zoo sweep's
full backbone, the size goal follows the mode, every key zoo.py copies is one repair.py writes,
and the outlier model computes the same float function (a real, tiny Keras model).

Example:
    .venv/bin/python -m pytest -q tests/unit/test_bench_repair_keys.py
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bench(request):
    """benchmarks/ is not a package: its scripts import their siblings by bare name (`from repair
    import ...`), so it goes on sys.path as when a script runs, and comes off afterwards."""
    sys.path.insert(0, str(BENCH))
    modules = {name: importlib.import_module(name) for name in ("repair", "zoo")}
    yield modules
    sys.path.remove(str(BENCH))
    for name in ("repair", "zoo"):
        sys.modules.pop(name, None)


def test_repair_is_the_benchmark_script_not_tfkit_convert_repair(bench):
    assert Path(bench["repair"].__file__).resolve() == BENCH / "repair.py"
    assert hasattr(bench["repair"], "measure_repair")


def test_full_spec_is_the_zoo_sweeps_full_backbone_at_the_quick_input(bench):
    repair, zoo = bench["repair"], bench["zoo"]
    quick, full = repair.model_spec(False, 7, 0), repair.model_spec(True, 7, 3)
    for spec, base in ((quick, zoo.SWEEP_BASE[True]), (full, zoo.SWEEP_BASE[False])):
        assert (spec.alpha, spec.stages) == (base["alpha"], base["stages"])
        assert (spec.frames, spec.size) == (repair.DATA["frames"], repair.DATA["size"])  # what it trains on
        assert spec.causal
    assert (full.alpha, full.stages, full.seed) == (1.0, 7, 3)


def test_goals_follow_the_mode_and_reach_the_zoo(bench):
    goals = bench["repair"].goals
    assert goals(False)["min_int8_size_reduction_repaired"] == ">= 3.0"
    assert goals(True)["min_int8_size_reduction_repaired"] == ">= 3.6"
    for full in (False, True):
        assert goals(full)["repair_drop_before"] == "> 0.02"
        assert goals(full)["repair_drop_after"] == "<= 0.01"


def test_zoo_copies_only_keys_repair_writes(bench):
    """The committed result of benchmarks/repair.py holds every key zoo.py lifts to its top level."""
    written = json.loads((BENCH / "results" / "repair.json").read_text())
    missing = [k for k in bench["zoo"].REPAIR_KEYS if k not in written]
    assert not missing, f"zoo.py copies keys benchmarks/repair.py does not write: {missing}"
    assert "repair" in bench["zoo"].PARTS
    assert bench["zoo"].PARTS.index("qat") < bench["zoo"].PARTS.index("repair") < bench["zoo"].PARTS.index("sweep")


def test_outlier_model_computes_the_same_logits_with_one_huge_channel(bench):
    from tfkit.models import VideoModelSpec, build

    spec = VideoModelSpec(num_classes=3, frames=2, size=32, alpha=0.35, stages=2, causal=True, seed=0)
    model = build(spec)
    changed = bench["repair"].outlier_model(model, 1000.0, 2)
    clips = np.random.default_rng(0).uniform(-1, 1, (2, *spec.input_shape)).astype(np.float32)
    before, after = model.predict(clips, verbose=0), changed.predict(clips, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    scale = changed.get_layer("outlier").get_weights()[0].ravel()
    assert scale[2] == 1000.0 and np.all(np.delete(scale, 2) == 1.0)
