"""Label-aware augmentation: every transformed clip's label matches the motion it now shows."""
import numpy as np
import pytest

from tests.helpers import content_shift
from tfkit.data import MOTION_CLASSES, MOTION_SYMMETRIES, motion_video
from tfkit.errors import UsageError
from tfkit.train import TrainConfig, _augmenter


def dominant_shift(clip: np.ndarray) -> tuple[int, int]:
    """(dy, dx) from the first to the last frame."""
    grey = clip.astype(np.float64).mean(-1)
    dx, dy = content_shift(grey[0], grey[-1])
    return dy, dx


DIRECTION = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def test_augmented_labels_follow_the_motion():
    from tfkit._compat.keras import tf

    tf().random.set_seed(0)
    classes = list(MOTION_CLASSES)
    augment = _augmenter(MOTION_SYMMETRIES, classes)
    rng = np.random.default_rng(0)
    seen = set()
    for name in ("left", "up"):
        clip = motion_video(name, rng, frames=4, size=48)
        for _ in range(24):
            x, y = augment(tf().constant(clip), tf().constant(classes.index(name), tf().int64))
            label = classes[int(y)]
            dy, dx = dominant_shift(np.asarray(x))
            main_axis = (int(np.sign(dy)), 0) if abs(dy) > abs(dx) else (0, int(np.sign(dx)))
            assert main_axis == DIRECTION[label] and max(abs(dy), abs(dx)) >= 3, (name, label, dy, dx)
            seen.add(label)
    assert seen == {"left", "right", "up", "down"}  # all four directions are produced


def test_unknown_transform_is_refused():
    with pytest.raises(UsageError, match="unknown symmetry"):
        _augmenter({"rot45": {}}, ["a", "b"])


def test_config_validation():
    with pytest.raises(UsageError):
        TrainConfig(epochs=0)
