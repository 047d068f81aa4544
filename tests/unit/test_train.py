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


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_fast_adamw_takes_the_same_steps_as_keras_adamw(weight_decay, tmp_path):
    """tfkit's AdamW (legacy Adam's fused update + decoupled decay) must follow tf_keras's AdamW
    step for step, with a learning-rate schedule, and a model compiled with it must save and load."""
    from tfkit._compat.keras import keras, tf
    from tfkit.models.io import load_model, save_model
    from tfkit.train import adamw

    K, T = keras(), tf()
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    x, y = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)

    def run(optimizer):
        layer = K.layers.Dense(3)
        layer.build((None, 6))
        layer.set_weights(start)
        for _ in range(6):
            with T.GradientTape() as tape:
                loss = T.reduce_mean(T.square(layer(x) - y))
            optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))
        return [w.numpy() for w in layer.trainable_variables]

    def schedule():
        return K.optimizers.schedules.CosineDecay(0.0, decay_steps=5, warmup_target=0.05, warmup_steps=2)

    ours = run(adamw(schedule(), weight_decay))
    theirs = run(K.optimizers.AdamW(schedule(), weight_decay=weight_decay))
    moved = max(np.abs(a - b).max() for a, b in zip(ours, start))
    assert moved > 0.05  # the steps are real, not a no-op matching a no-op
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    model = K.Sequential([K.Input((6,)), K.layers.Dense(3)])
    model.compile(optimizer=adamw(1e-3, weight_decay), loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    save_model(model, tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras")(x), model(x), rtol=1e-6)
