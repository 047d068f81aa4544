"""Supervised training of a clip classifier on uint8 clips, with a progress bar and a held-out
validation accuracy.

Example:
    >>> result = train_classifier(model, data.train, data.val, TrainConfig(epochs=2))  # doctest: +SKIP
    >>> result.val_accuracy
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from tfkit.data.clips import normalize
from tfkit.errors import DataError, UsageError
from tfkit.types import Normalization


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    augment: bool = True  # label-aware flips/transposes/time reversal the dataset declares
    seed: int = 0  # shuffling, augmentation, dropout: see `reproducible`
    # None: the clips' own (their ClipSpec's, see `data_normalization`). A value is only a check:
    # training on clips cut for another normalization is an error, never a silent rescale.
    normalization: Normalization | None = None

    def __post_init__(self):
        for name, ok, rule in (("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                               ("learning_rate", self.learning_rate > 0, "> 0")):
            if not ok:  # name the one field, not the whole config's repr
                raise UsageError(f"train.{name} must be {rule}, got {getattr(self, name)!r}")
        if self.normalization is not None:
            try:
                object.__setattr__(self, "normalization", Normalization(self.normalization))
            except ValueError:
                raise UsageError(f"unknown normalization {self.normalization!r}; choose one of "
                                 f"{', '.join(n.value for n in Normalization)}") from None

    def to_dict(self) -> dict:
        return {**asdict(self), "normalization": self.normalization.value if self.normalization else None}


def data_normalization(clips, expected: Normalization | str | None = None) -> Normalization:
    """How `clips` (a ClipSet) must be scaled: the normalization its clip spec was cut for, so no
    trainer can feed it on another scale. `expected` (a config's explicit choice) must agree with
    it (DataError otherwise); clips without a clip spec (a bare npz) take `expected`, or ClipSpec's
    default, symmetric.

    Example:
        >>> data_normalization(data.train)  # doctest: +SKIP
        <Normalization.UNIT: 'unit'>
    """
    clip = getattr(clips, "clip", None)
    own = clip.normalization if clip is not None else None
    if expected is None:
        return own or Normalization.SYMMETRIC
    expected = Normalization(expected)
    if own is not None and own != expected:
        raise DataError(f"the clips were cut for {own.value!r} normalization but training asks for "
                        f"{expected.value!r}; drop the normalization from the training config (it follows "
                        "the data) or rebuild the dataset with the normalization the model expects")
    return expected


def reproducible(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras's initializers with `seed`, and make TensorFlow's
    ops deterministic: the same config and data then give the same weights on the same machine.
    Called by each trainer as it starts (never at import: op determinism is process-wide and
    also runs tf.data maps with random ops serially). Measured cost: docs/reproducibility.md."""
    from tfkit._compat.keras import keras, tf

    keras().utils.set_random_seed(int(seed))
    tf().config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class TrainResult:
    model: object
    val_accuracy: float
    train_accuracy: float
    history: dict


def evaluate_accuracy(model, x_uint8: np.ndarray, y: np.ndarray, normalization, batch_size: int = 16) -> float:
    """Top-1 accuracy of a Keras model on uint8 clips."""
    if len(y) == 0:
        raise UsageError("no validation clips to evaluate on; lower val_fraction or add videos")
    from tfkit.convert.parity import first_output

    preds = [np.argmax(first_output(model(normalize(x_uint8[i:i + batch_size], normalization), training=False)), -1)
             for i in range(0, len(y), batch_size)]
    return float(np.mean(np.concatenate(preds) == y))


# Clip transforms a dataset may declare label maps for (see tfkit.data.MOTION_SYMMETRIES).
TRANSFORMS = ("hflip", "vflip", "transpose", "reverse")


def _identity(x):
    return x


class _Augmenter:
    """Label-aware augmentation: each declared transform applied with p=0.5 and the label
    remapped. Also usable deterministically: variant `v` (0 <= v < `variants`) applies the
    transforms whose bit is set in `v`, so a teacher's outputs can be computed once per clip and
    variant (tfkit.optimize.distill) and looked up by the key `keyed` returns."""

    def __init__(self, symmetries: dict, classes: list[str]):
        from tfkit._compat.keras import tf

        T = self.T = tf()
        unknown = sorted(set(symmetries) - set(TRANSFORMS))
        if unknown:
            raise UsageError(f"unknown symmetry transform(s) {unknown}; known: {list(TRANSFORMS)}")

        # Named functions, not lambdas on one line: autograph cannot tell such lambdas apart and warns.
        def hflip(x):
            return x[:, :, ::-1]

        def vflip(x):
            return x[:, ::-1]

        def transpose(x):
            return T.transpose(x, [0, 2, 1, 3])

        def reverse(x):
            return x[::-1]

        ops = {"hflip": hflip, "vflip": vflip, "transpose": transpose, "reverse": reverse}
        index = {c: i for i, c in enumerate(classes)}
        self.tables = []
        for name, mapping in sorted(symmetries.items()):
            perm = list(range(len(classes)))
            for src, dst in mapping.items():
                if src in index and dst in index:
                    perm[index[src]] = index[dst]
            self.tables.append((ops[name], T.constant(perm, T.int64)))
        self.variants = 2 ** len(self.tables)

    def _apply(self, x, y, flips):
        T = self.T
        for (op, perm), flip in zip(self.tables, flips, strict=True):
            if isinstance(flip, bool):  # a fixed variant
                x, y = (op(x), T.gather(perm, y)) if flip else (x, y)
                continue
            x = T.cond(flip, functools.partial(op, x), functools.partial(_identity, x))
            y = T.where(flip, T.gather(perm, y), y)
        return x, y

    def _draw(self):
        return [self.T.random.uniform(()) < 0.5 for _ in self.tables]

    def __call__(self, x, y):
        return self._apply(x, y, self._draw())

    def keyed(self, x, y, i):
        """A random variant of clip `i`, its label, and the key i * variants + variant."""
        flips = self._draw()
        variant = sum(self.T.cast(f, self.T.int64) * (1 << bit) for bit, f in enumerate(flips)) if flips else 0
        x, y = self._apply(x, y, flips)
        return x, y, i * self.variants + variant

    def variant(self, x, v: int):
        """Clip `x` as variant `v` (a Python int) shows it."""
        x, _ = self._apply(x, self.T.constant(0, self.T.int64), [bool(v >> bit & 1) for bit in range(len(self.tables))])
        return x


def _augmenter(symmetries: dict, classes: list[str]) -> _Augmenter:
    """A tf.data map applying each declared transform with p=0.5 and remapping the label."""
    return _Augmenter(symmetries, classes)


def _augments(config: TrainConfig, symmetries: dict | None) -> bool:
    return bool(config.augment and symmetries)


def clip_batches(clips, config: TrainConfig, symmetries: dict | None = None, *, keyed: bool = False):
    """A shuffled, augmented (when `config.augment` and the dataset declares `symmetries`),
    normalized tf.data pipeline of (float clips, int labels) batches: what every trainer feeds.
    `keyed`: batches of (clips, labels, keys), each key clip index * variants + the augmentation
    variant it got (see `_Augmenter`; variants is 1 without augmentation)."""
    from tfkit._compat.keras import tf

    T = tf()
    scale, offset = data_normalization(clips, config.normalization).scale_offset()

    def prep(x, y, *key):
        return (T.cast(x, T.float32) * scale + offset, y, *key)

    slices = (clips.x, clips.y.astype(np.int64)) + ((np.arange(len(clips.y), dtype=np.int64),) if keyed else ())
    ds = T.data.Dataset.from_tensor_slices(slices).shuffle(len(clips.y), seed=config.seed,
                                                          reshuffle_each_iteration=True)
    if _augments(config, symmetries):
        augment = _Augmenter(symmetries, list(clips.classes))
        ds = ds.map(augment.keyed if keyed else augment, num_parallel_calls=2)
    return ds.batch(config.batch_size).map(prep, num_parallel_calls=2).prefetch(2)


@functools.cache
def _adamw_class():
    from tfkit._compat.keras import keras, tf

    K, T = keras(), tf()

    class DecoupledAdamW(K.optimizers.legacy.Adam):
        """AdamW (decoupled weight decay, Loshchilov & Hutter 2019) on Keras's legacy Adam, whose
        update is one fused op per variable. tf_keras's AdamW builds ~15 ops per variable in
        Python: tracing a training step of the 9-block reference took 7 s longer with it (first
        epoch 20.8 vs 13.9 s, later epochs the same), and tfkit traces one per fine-tune. Same
        update as that AdamW: the variable shrinks by lr * weight_decay, then the Adam step
        (epsilon-hat form, as both implement it)."""

        def __init__(self, learning_rate=1e-3, weight_decay: float = 0.0, name: str = "DecoupledAdamW", **kwargs):
            super().__init__(learning_rate, name=name, **kwargs)
            self.weight_decay = float(weight_decay)

        def _decayed(self, var, apply_state):
            key = (var.device, var.dtype.base_dtype)
            lr = ((apply_state or {}).get(key) or self._fallback_apply_state(*key))["lr_t"]
            return var.assign_sub(var * (lr * self.weight_decay), read_value=False)

        def _after_decay(self, update, var, apply_state):
            """`update()` (the Adam step), once the decoupled decay of `var` has run."""
            if not self.weight_decay:
                return update()
            with T.control_dependencies([self._decayed(var, apply_state)]):
                return update()

        def _resource_apply_dense(self, grad, var, apply_state=None):
            return self._after_decay(lambda: super(DecoupledAdamW, self)._resource_apply_dense(
                grad, var, apply_state), var, apply_state)

        def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
            return self._after_decay(lambda: super(DecoupledAdamW, self)._resource_apply_sparse(
                grad, var, indices, apply_state), var, apply_state)

        def get_config(self):
            return {**super().get_config(), "weight_decay": self.weight_decay}

    return DecoupledAdamW


def adamw(learning_rate, weight_decay: float = 0.0):
    """The optimizer every tfkit trainer uses: AdamW with `learning_rate` (a float or a Keras
    schedule), traced as fast as plain Adam (see `_adamw_class`)."""
    return _adamw_class()(learning_rate, weight_decay=weight_decay)


def train_classifier(model, train, val, config: TrainConfig = TrainConfig(), *, progress: bool = True,
                     symmetries: dict | None = None, callbacks: list | None = None) -> TrainResult:
    """Train `model` (tf_keras, logits out) on `train` (ClipSet: uint8 x, int y); returns a new
    result with the held-out accuracy on `val`. Cosine-decayed AdamW; the model is trained in place.
    Pixels are scaled as the clips' own clip spec says (`data_normalization`), and the run is
    seeded and deterministic (`reproducible`): one config and one data set, one set of weights.

    `symmetries` ({transform: {class: class}}) enables label-aware augmentation when
    `config.augment` is set; clips must be square for "transpose". `callbacks` are extra Keras
    callbacks (TFMOT's UpdatePruningStep for pruning)."""
    from tfkit._compat.keras import keras, tf
    from tfkit.progress import progress_bar

    K, T = keras(), tf()
    if len(train.y) == 0:
        raise UsageError("the training split is empty; add videos or lower val_fraction")
    normalization = data_normalization(train, config.normalization)
    data_normalization(val, normalization)  # both halves on one scale
    reproducible(config.seed)
    steps_per_epoch = int(np.ceil(len(train.y) / config.batch_size))
    total = steps_per_epoch * config.epochs
    schedule = K.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - steps_per_epoch), warmup_target=config.learning_rate,
        warmup_steps=min(steps_per_epoch, total // 4))
    # Every output is a classifier over the same labels (an early-exit head is trained with the
    # final one); accuracy is tracked on the first, `logits`.
    heads = list(model.output_names)
    model.compile(
        optimizer=adamw(schedule, config.weight_decay),
        loss=K.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics={heads[0]: "accuracy"} if len(heads) > 1 else ["accuracy"],
    )
    num_classes = int(model.outputs[0].shape[-1])
    accuracy_key = f"{heads[0]}_accuracy" if len(heads) > 1 else "accuracy"
    if int(np.max(train.y)) >= num_classes:
        raise UsageError(f"labels go up to {int(np.max(train.y))} but the model has {num_classes} outputs")

    def targets(x, y):
        target = T.one_hot(y, num_classes)
        return x, ({h: target for h in heads} if len(heads) > 1 else target)

    ds = clip_batches(train, config, symmetries).map(targets)

    class Bar(K.callbacks.Callback):
        def __init__(self, advance):
            super().__init__()
            self.advance = advance

        def on_train_batch_end(self, batch, logs=None):
            self.advance(1)

        def on_epoch_end(self, epoch, logs=None):
            self.advance(0, epoch=epoch + 1, loss=float(logs["loss"]), acc=float(logs[accuracy_key]))

    with progress_bar("training", total=total, enabled=progress) as advance:
        hist = model.fit(ds, epochs=config.epochs, verbose=0, callbacks=[Bar(advance), *(callbacks or ())])
    val_accuracy = evaluate_accuracy(model, val.x, val.y, normalization)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return TrainResult(model, val_accuracy, history[accuracy_key][-1], history)
