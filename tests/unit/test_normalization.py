"""Training and fine-tuning scale clips by the normalization their dataset was cut for: a model
whose first layer records the range of what it is fed sees [0, 1] on a `unit` dataset, through
the training loop and through the fine-tuning techniques that build their own TrainConfig."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from tfkit.data.folder import ClipSet
from tfkit.errors import DataError, UsageError
from tfkit.train import TrainConfig, data_normalization
from tfkit.types import ClipSpec, Normalization

SHAPE = (2, 16, 16, 3)  # frames, height, width, channels: the probe model needs nothing bigger
CLASSES = ("a", "b", "c")


def _clips(n: int, seed: int, normalization: str | None) -> ClipSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    x[0].fill(0)  # the extremes are always there: 0 -> 0 (unit) or -1 (symmetric), 255 -> 1
    x[1].fill(255)
    clip = ClipSpec(frames=SHAPE[0], size=SHAPE[1], normalization=normalization) if normalization else None
    return ClipSet(x, rng.integers(0, 3, n).astype(np.int64), tuple(f"c{i}" for i in range(n)), CLASSES, clip)


@functools.cache
def _probe_class():
    from tfkit._compat.keras import keras, tf

    K, T = keras(), tf()

    class RangeProbe(K.layers.Layer):
        """Passes its input through and keeps the smallest and largest value it has been fed."""

        def build(self, input_shape):
            self.lo = self.add_weight(name="lo", shape=(), initializer=K.initializers.Constant(1e9), trainable=False)
            self.hi = self.add_weight(name="hi", shape=(), initializer=K.initializers.Constant(-1e9), trainable=False)

        def call(self, x):
            self.lo.assign(T.minimum(self.lo, T.reduce_min(x)))
            self.hi.assign(T.maximum(self.hi, T.reduce_max(x)))
            return x

    return RangeProbe


def _probe_model(seed: int = 0):
    from tfkit._compat.keras import keras

    K = keras()
    K.utils.set_random_seed(seed)
    inp = K.Input(SHAPE)
    x = _probe_class()(name="probe")(inp)
    x = K.layers.GlobalAveragePooling3D()(x)
    x = K.layers.Dense(16, activation="relu", name="hidden")(x)
    return K.Model(inp, K.layers.Dense(len(CLASSES), name="logits")(x))


def _seen(model) -> tuple[float, float]:
    lo, hi = model.get_layer("probe").get_weights()
    return float(lo), float(hi)


def _assert_unit(model):
    lo, hi = _seen(model)
    assert lo == pytest.approx(0.0, abs=1e-6) and hi == pytest.approx(1.0, abs=1e-6), \
        f"a unit dataset was fed on [{lo}, {hi}], not [0, 1]"


def test_the_training_loop_feeds_a_unit_dataset_on_its_own_scale():
    from tfkit.train import train_classifier

    model = _probe_model()
    train_classifier(model, _clips(8, 0, "unit"), _clips(4, 1, "unit"), TrainConfig(epochs=1, batch_size=4),
                     progress=False)
    _assert_unit(model)


def test_pruning_fine_tunes_a_unit_dataset_on_its_own_scale():
    from tfkit.optimize.prune import PruneConfig, prune_magnitude

    result = prune_magnitude(_probe_model(), _clips(8, 0, "unit"), _clips(4, 1, "unit"),
                             PruneConfig(sparsity=0.5, schedule="constant", epochs=1, batch_size=4, frequency=1),
                             progress=False)
    _assert_unit(result.model)


def test_clustering_fine_tunes_a_unit_dataset_on_its_own_scale():
    from tfkit.optimize.cluster import ClusterConfig, cluster_weights

    result = cluster_weights(_probe_model(), _clips(8, 0, "unit"), _clips(4, 1, "unit"),
                             ClusterConfig(clusters=4, epochs=1, batch_size=4), progress=False)
    _assert_unit(result.model)


@pytest.mark.parametrize("table", [True, False], ids=["teacher-table", "teacher-forward"])
def test_distillation_feeds_student_and_teacher_a_unit_dataset_on_its_own_scale(table):
    from tfkit.optimize.distill import DistillConfig, distill

    student, teacher = _probe_model(0), _probe_model(1)
    # one epoch uses the teacher table only without augmentation variants; features force a forward pass
    features = () if table else (("hidden", "hidden"),)
    result = distill(student, teacher, _clips(8, 0, "unit"), _clips(4, 1, "unit"),
                     DistillConfig(epochs=1, batch_size=4, features=features), progress=False)
    _assert_unit(result.model)
    _assert_unit(teacher)


def test_an_explicit_normalization_that_contradicts_the_data_is_an_error():
    from tfkit.train import train_classifier

    with pytest.raises(DataError, match="cut for 'unit'.*asks for 'symmetric'"):
        train_classifier(_probe_model(), _clips(8, 0, "unit"), _clips(4, 1, "unit"),
                         TrainConfig(epochs=1, normalization="symmetric"), progress=False)


def test_the_data_decides_and_an_agreeing_config_or_a_bare_clip_set_is_accepted():
    unit, bare = _clips(2, 0, "unit"), _clips(2, 0, None)
    assert data_normalization(unit) is Normalization.UNIT
    assert data_normalization(unit, "unit") is Normalization.UNIT
    assert data_normalization(bare) is Normalization.SYMMETRIC  # ClipSpec's default
    assert data_normalization(bare, "unit") is Normalization.UNIT
    with pytest.raises(DataError, match="cut for 'symmetric'"):
        data_normalization(_clips(2, 0, "symmetric"), Normalization.UNIT)
    with pytest.raises(UsageError, match="unknown normalization 'zero_one'"):
        TrainConfig(normalization="zero_one")
    assert TrainConfig().to_dict()["normalization"] is None


def test_a_unit_dataset_saved_and_loaded_keeps_its_normalization(tmp_path):
    """The data step's files carry the clip spec, so a fine-tuning step that loads them gets it back."""
    loaded = ClipSet.load_npz(_clips(2, 0, "unit").save_npz(tmp_path / "train.npz"))
    assert data_normalization(loaded) is Normalization.UNIT
