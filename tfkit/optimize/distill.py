"""Knowledge distillation: a student (pruned, block-removed or simply smaller) learns from a
frozen teacher's softened logits (Hinton et al. 2015) and, optionally, from its intermediate
features (FitNets, Romero et al. 2015), on top of the labels.

loss = (1 - alpha) * CE(labels, student) + alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T))
       + feature_weight * mean over pairs of ||proj(student feature) - teacher feature||^2 / E[teacher^2]

A feature pair names a student layer and a teacher layer with the same spatial shape; when their
channel counts differ, a 1x1 projection is learned alongside and thrown away afterwards.

Example:
    >>> result = distill(student, teacher, data.train, data.val, DistillConfig(epochs=4))  # doctest: +SKIP
    >>> result.val_accuracy                                                              # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import numpy as np

from tfkit.errors import UsageError
from tfkit.train import TrainConfig, TrainResult


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the teacher's soft targets; 1 - alpha on the labels
    features: tuple = ()  # ((student layer, teacher layer), ...)
    feature_weight: float = 1.0
    epochs: int = 4
    learning_rate: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 0.0
    augment: bool = True
    seed: int = 0

    def __post_init__(self):
        if not self.temperature > 0:
            raise UsageError(f"distillation temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"distillation alpha must be in [0, 1], got {self.alpha}")
        if self.feature_weight < 0:
            raise UsageError(f"feature_weight must be >= 0, got {self.feature_weight}")
        pairs = tuple(tuple(p) for p in self.features)
        if any(len(p) != 2 or not all(isinstance(n, str) for n in p) for p in pairs):
            raise UsageError(f"features must be (student layer, teacher layer) name pairs, got {self.features!r}")
        object.__setattr__(self, "features", pairs)
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           weight_decay=self.weight_decay, augment=self.augment, seed=self.seed, label_smoothing=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _layer_output(model, name: str, role: str):
    try:
        return model.get_layer(name).output
    except ValueError:
        raise UsageError(f"feature distillation: the {role} has no layer {name!r}") from None


def distill(student, teacher, train, val, config: DistillConfig = DistillConfig(), *, progress: bool = True,
            symmetries: dict | None = None) -> TrainResult:
    """Train `student` (in place, like tfkit.train.train_classifier) against the frozen `teacher`
    on `train`; returns the student and its validation accuracy on `val`."""
    from tfkit._compat.keras import keras, tf
    from tfkit.progress import progress_bar
    from tfkit.train import adamw, clip_batches, data_normalization, evaluate_accuracy, reproducible

    K, T = keras(), tf()
    if len(train.y) == 0:
        raise UsageError("the training split is empty; add videos or lower val_fraction")
    n_student, n_teacher = int(student.outputs[0].shape[-1]), int(teacher.outputs[0].shape[-1])
    if n_student != n_teacher:
        raise UsageError(f"student has {n_student} classes but the teacher {n_teacher}")
    reproducible(config.seed)
    s_feats = [_layer_output(student, s, "student") for s, _ in config.features]
    t_feats = [_layer_output(teacher, t, "teacher") for _, t in config.features]
    for (s_name, t_name), s, t in zip(config.features, s_feats, t_feats, strict=True):
        if s.shape[1:-1] != t.shape[1:-1]:
            raise UsageError(f"feature pair ({s_name!r}, {t_name!r}): shapes {s.shape} and {t.shape} differ in space")
    s_model = K.Model(student.inputs, [student.outputs[0], *s_feats])
    t_model = K.Model(teacher.inputs, [teacher.outputs[0], *t_feats])
    projections = [K.layers.Dense(int(t.shape[-1]), use_bias=False, name=f"distill_proj{i}")
                   if s.shape[-1] != t.shape[-1] else None for i, (s, t) in enumerate(zip(s_feats, t_feats))]
    # The clips' normalization, fixed once here: the teacher table, the batches and the accuracies use it.
    tc = replace(config.train_config(), normalization=data_normalization(train))
    data_normalization(val, tc.normalization)
    # The teacher is frozen and augmentation draws from a few variants per clip, so without
    # feature pairs its logits are computed once per (clip, variant) and looked up: fewer teacher
    # passes whenever there are at least as many epochs as variants (measured: the teacher's
    # forward was 28% of a distillation step of a 75%-pruned student).
    table = teacher_table(t_model, train, tc, symmetries) if not config.features and \
        config.epochs >= variants(tc, symmetries) else None
    ds = clip_batches(train, tc, symmetries, keyed=table is not None)
    per_epoch = int(np.ceil(len(train.y) / config.batch_size))
    steps = per_epoch * config.epochs
    schedule = K.optimizers.schedules.CosineDecay(  # as tfkit.train: warm up, then cosine to zero
        0.0, decay_steps=max(1, steps - per_epoch), warmup_target=config.learning_rate,
        warmup_steps=min(per_epoch, steps // 4))
    optimizer = adamw(schedule, config.weight_decay)
    temp, alpha = float(config.temperature), float(config.alpha)
    variables = list(student.trainable_variables)

    @T.function
    def step(x, y, key=None):
        if key is not None:
            t_out = [T.gather(table, key)]
        else:
            t_out = t_model(x, training=False)
            t_out = t_out if isinstance(t_out, list) else [t_out]
        with T.GradientTape() as tape:
            s_out = s_model(x, training=True)
            s_out = s_out if isinstance(s_out, list) else [s_out]
            hard = K.losses.sparse_categorical_crossentropy(y, s_out[0], from_logits=True)
            soft_t = T.nn.softmax(t_out[0] / temp)
            kl = T.reduce_sum(soft_t * (T.nn.log_softmax(t_out[0] / temp) - T.nn.log_softmax(s_out[0] / temp)), -1)
            loss = T.reduce_mean((1.0 - alpha) * hard + alpha * temp * temp * kl)
            for proj, s, t in zip(projections, s_out[1:], t_out[1:], strict=True):
                s = proj(s) if proj is not None else s
                loss += config.feature_weight * T.reduce_mean(T.square(s - t)) / (T.reduce_mean(T.square(t)) + 1e-6)
        trainable = variables + [v for p in projections if p is not None for v in p.trainable_variables]
        optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
        return loss

    for proj, s in zip(projections, s_feats, strict=True):  # create their weights before tracing
        if proj is not None:
            proj.build(s.shape)
    with progress_bar("distilling", total=steps, enabled=progress) as advance:
        for epoch in range(config.epochs):
            losses = []
            for batch in ds:
                losses.append(float(step(*batch)))
                advance(1)
            advance(0, epoch=epoch + 1, loss=float(np.mean(losses)))
    val_accuracy = evaluate_accuracy(student, val.x, val.y, tc.normalization)
    train_accuracy = evaluate_accuracy(student, train.x, train.y, tc.normalization)
    return TrainResult(student, val_accuracy, train_accuracy, {"loss": [float(np.mean(losses))]})


def variants(config: TrainConfig, symmetries: dict | None) -> int:
    """How many distinct augmented versions of a clip training with `config` draws from."""
    from tfkit.train import _augments

    return 2 ** len(symmetries) if _augments(config, symmetries) else 1


_TABLES: OrderedDict = OrderedDict()  # content digest -> teacher table, the few most recent
_TABLES_KEPT = 4


def _table_digest(t_model, train, config: TrainConfig, symmetries: dict | None) -> str:
    """What a teacher table depends on, hashed: the teacher's architecture and weights, the clips,
    the normalization and which transforms make the variants (not the label maps: the table holds
    logits, not labels). A teacher trained further, or other clips, give another digest."""
    from tfkit.train import _augments, data_normalization

    h = hashlib.blake2b(digest_size=20)
    architecture = dict(t_model.get_config())
    architecture.pop("name", None)  # the wrapper distill builds gets a fresh name each call
    h.update(json.dumps(architecture, sort_keys=True, default=str).encode())
    for w in t_model.weights:
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    x = np.ascontiguousarray(train.x)
    h.update(repr((x.shape, str(x.dtype), data_normalization(train, config.normalization).value,
                   sorted(symmetries or {}) if _augments(config, symmetries) else None)).encode())
    h.update(x.tobytes())
    return h.hexdigest()


def teacher_table(t_model, train, config: TrainConfig, symmetries: dict | None, *, batch_size: int = 32):
    """The teacher's first output for every clip in every augmentation variant, as a float32
    tensor (clips * variants, classes) indexed by the keys of `clip_batches(..., keyed=True)`.
    The last few tables are kept by content digest (see `_table_digest`): distilling several
    students from one teacher on one training set (a ratio sweep) computes it once."""
    from tfkit._compat.keras import tf

    digest = _table_digest(t_model, train, config, symmetries)
    if digest not in _TABLES:
        _TABLES[digest] = _compute_table(t_model, train, config, symmetries, batch_size)
    _TABLES.move_to_end(digest)
    while len(_TABLES) > _TABLES_KEPT:
        _TABLES.popitem(last=False)
    return tf().constant(_TABLES[digest])


def _compute_table(t_model, train, config: TrainConfig, symmetries: dict | None, batch_size: int) -> np.ndarray:
    from tfkit._compat.keras import tf
    from tfkit.train import _Augmenter, _augments, data_normalization

    T = tf()
    scale, offset = data_normalization(train, config.normalization).scale_offset()
    augment = _Augmenter(symmetries, list(train.classes)) if _augments(config, symmetries) else None
    count = variants(config, symmetries)
    forward = T.function(lambda x: t_model(x, training=False))
    table = np.zeros((len(train.y), count, int(t_model.outputs[0].shape[-1])), np.float32)
    for v in range(count):
        ds = T.data.Dataset.from_tensor_slices(train.x)
        if augment is not None:
            ds = ds.map(lambda x, v=v: augment.variant(x, v))
        start = 0
        for x in ds.batch(batch_size).map(lambda x: T.cast(x, T.float32) * scale + offset).prefetch(2):
            out = forward(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            table[start:start + len(out), v] = out.numpy()
            start += len(out)
    return table.reshape(len(train.y) * count, -1)
