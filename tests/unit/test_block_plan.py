"""Stage 1 of structured pruning (tfkit.optimize.blocks.plan_block_removal) on scripted numbers:
blocks ranked by latency saved per accuracy lost, removed until the target saving, a block whose
removal alone costs more than max_drop_alone kept, at most max_blocks removed. The model is real
(remove_blocks rebuilds it); the timings and the accuracy of each smaller model are scripted, so
every expected plan below is worked out by hand from the table."""
from __future__ import annotations

import pytest

from tfkit.optimize.blocks import LatencySplit, find_blocks, plan_block_removal

BASE = 0.90
# block -> (accuracy with only it removed, ms its removal saves). score = saved / (drop + 0.01):
#   b0: 2.0 / 0.06 = 33.3   b1: 0.5 / 0.01 = 50 (its removal helps: drop clipped to 0)
#   b2: 5.0 / 0.31 = 16.1   b3: 1.0 / 0.11 = 9.1
# so the ranking is b1, b0, b2, b3: not by ms saved (b2 first) nor by drop alone (b3 before b2).
TABLE = {"b0_add": (0.85, 2.0), "b1_add": (0.92, 0.5), "b2_add": (0.60, 5.0), "b3_add": (0.80, 1.0)}


@pytest.fixture(scope="module")
def model():
    """Input -> stem -> four identity residual blocks b0..b3 -> pool -> logits."""
    from tfkit._compat.keras import keras

    K = keras()
    inp = K.Input((8, 8, 4), name="x")
    x = K.layers.Conv2D(8, 1, name="stem")(inp)
    for i in range(4):
        branch = K.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"b{i}_conv")(x)
        x = K.layers.Add(name=f"b{i}_add")([x, branch])
    out = K.layers.Dense(3, name="logits")(K.layers.GlobalAveragePooling2D(name="pool")(x))
    return K.Model(inp, out)


def _split(block: str, ms: float) -> LatencySplit:
    return LatencySplit(block, (1.0, 0.5), (ms, ms * 0.6), ms * 0.2, ms * 0.8, 0.2)


class ScriptedAccuracy:
    """The accuracy of a model by which blocks are missing from it: the full model gives BASE,
    one block removed gives its TABLE entry; anything else is a bug in the planner."""

    def __init__(self):
        self.seen: list[frozenset] = []

    def __call__(self, m) -> float:
        missing = frozenset(TABLE) - {layer.name for layer in m.layers}
        self.seen.append(missing)
        if not missing:
            return BASE
        assert len(missing) == 1, f"stage 1 scores each block removed alone, got {sorted(missing)}"
        return TABLE[next(iter(missing))][0]


def _plan(model, **kw):
    blocks = find_blocks(model)
    assert [b.name for b in blocks] == list(TABLE)
    accuracy = ScriptedAccuracy()
    plan = plan_block_removal(model, blocks, [_split(b, ms) for b, (_, ms) in TABLE.items()], accuracy, **kw)
    # the model as given once, then each block removed alone, each once
    assert sorted(map(sorted, accuracy.seen)) == sorted([[]] + [[b] for b in TABLE])
    return plan


def test_candidates_are_scored_by_saved_ms_per_accuracy_lost(model):
    plan = _plan(model, target_saving_ms=100.0, max_drop_alone=1.0)
    c = plan.candidates
    assert {b: c[b]["accuracy_drop_alone"] for b in TABLE} == {"b0_add": 0.05, "b1_add": 0.0, "b2_add": 0.3,
                                                                "b3_add": 0.1}
    assert {b: c[b]["saves_ms"] for b in TABLE} == {b: ms for b, (_, ms) in TABLE.items()}
    assert sorted(TABLE, key=lambda b: -c[b]["score"]) == ["b1_add", "b0_add", "b2_add", "b3_add"]
    assert c["b0_add"]["score"] == pytest.approx(2.0 / 0.06) and c["b1_add"]["score"] == pytest.approx(50.0)
    # an unreachable target and no accuracy bound: every block goes, reported in model order
    assert plan.removed == ("b0_add", "b1_add", "b2_add", "b3_add") and plan.estimated_saving_ms == pytest.approx(8.5)


@pytest.mark.parametrize("target,removed,saved", [
    (0.0, (), 0.0),  # already met: nothing removed
    (0.4, ("b1_add",), 0.5),  # the best score first, although it saves the least
    (0.5, ("b1_add",), 0.5),  # reached exactly: stop
    (0.6, ("b0_add", "b1_add"), 2.5),
    (2.5, ("b0_add", "b1_add"), 2.5),
    (2.6, ("b0_add", "b1_add", "b2_add"), 7.5),  # b2 next by score, before b3
    (7.6, ("b0_add", "b1_add", "b2_add", "b3_add"), 8.5),
])
def test_blocks_are_removed_best_first_until_the_target_saving(model, target, removed, saved):
    plan = _plan(model, target_saving_ms=target, max_drop_alone=1.0)
    assert plan.removed == removed and plan.estimated_saving_ms == pytest.approx(saved)


def test_a_block_whose_removal_alone_costs_too_much_is_kept(model):
    # b2 (drop 0.3) is over the bound: skipped, and the planner goes on to b3 for the rest
    plan = _plan(model, target_saving_ms=3.0, max_drop_alone=0.2)
    assert plan.removed == ("b0_add", "b1_add", "b3_add") and plan.estimated_saving_ms == pytest.approx(3.5)
    assert plan.candidates["b2_add"]["accuracy_drop_alone"] > 0.2  # still reported with its numbers
    # the bound is inclusive: a drop equal to it is allowed
    assert _plan(model, target_saving_ms=100.0, max_drop_alone=0.1).removed == ("b0_add", "b1_add", "b3_add")
    assert _plan(model, target_saving_ms=100.0, max_drop_alone=0.05).removed == ("b0_add", "b1_add")
    assert _plan(model, target_saving_ms=100.0, max_drop_alone=0.0).removed == ("b1_add",)


@pytest.mark.parametrize("most,removed", [(0, ()), (1, ("b1_add",)), (2, ("b0_add", "b1_add")),
                                          (3, ("b0_add", "b1_add", "b3_add"))])
def test_max_blocks_caps_how_many_go(model, most, removed):
    plan = _plan(model, target_saving_ms=100.0, max_drop_alone=0.2, max_blocks=most)
    assert plan.removed == removed
    assert plan.estimated_saving_ms == pytest.approx(sum(TABLE[b][1] for b in removed))
