"""The same config gives the same model: build draws its initial weights from the spec's seed
(recorded in the manifest), a saved model's bytes do not depend on when it was saved, and
training twice with one seed gives the same weights while another seed gives others."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tfkit.data import MOTION_CLASSES, MOTION_SYMMETRIES
from tfkit.data.folder import ClipSet
from tfkit.models import VideoModelSpec, build
from tfkit.steps.base import RunContext, run_step
from tfkit.train import TrainConfig

SPEC = VideoModelSpec(num_classes=len(MOTION_CLASSES), frames=2, size=32, alpha=0.35, stages=2, head_channels=16,
                      frame_stack=True, dropout=0.5)  # dropout on: its masks are random draws too


def _same(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def _clips(n: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8)
    y = rng.integers(0, len(MOTION_CLASSES), n).astype(np.int64)
    return ClipSet(x, y, tuple(f"c{i}" for i in range(n)), MOTION_CLASSES)


def test_the_same_spec_builds_the_same_weights_and_another_seed_other_ones():
    first, second, other = build(SPEC), build(SPEC), build(replace(SPEC, seed=1))
    assert _same(first, second)
    assert not _same(first, other)


def test_the_build_step_records_its_seed_and_saves_the_same_bytes(tmp_path):
    from tfkit.steps.model import BuildStep

    ctx = RunContext(progress=False, log=lambda m: None)
    a = run_step(BuildStep(SPEC), [], tmp_path / "a", ctx)
    b = run_step(BuildStep(SPEC), [], tmp_path / "b", ctx)
    assert a.manifest.spec["model"]["seed"] == SPEC.seed == a.manifest.history[-1].config["seed"]
    digest = {art.path.name: art.manifest.history[-1].outputs[0].sha256 for art in (a, b)}
    assert digest["a"] == digest["b"], "one spec built twice saved different .keras bytes"


def _trained(seed: int):
    from tfkit.train import train_classifier

    model = build(SPEC)
    result = train_classifier(model, _clips(12, 0), _clips(4, 1), TrainConfig(epochs=1, batch_size=4, seed=seed),
                              progress=False, symmetries=MOTION_SYMMETRIES)  # shuffling, augmentation, dropout
    return result


def test_training_twice_with_one_seed_gives_the_same_weights_and_another_seed_other_ones():
    first, second, other = _trained(0), _trained(0), _trained(1)
    assert _same(first.model, second.model)
    assert first.history == second.history
    assert not _same(first.model, other.model)
