"""Fine-tuning a QAT model (from tfkit.convert.qat.quantize_aware) so its int8 matches or beats
post-training int8: activation ranges started where calibration would put them, BatchNorm kept on
its moving statistics, a gentle default schedule, and the tuned weights carried back into a float
model (what the streaming form is built from). tfkit.convert.qat re-exports all of it.

Measured on the default model over seeds (benchmarks/qat_vs_ptq.py, docs/compression_findings.md).

Example:
    >>> qat = quantize_aware(model, calibration=clips[:48])       # doctest: +SKIP
    >>> train_qat(qat, data.train, data.val).val_accuracy          # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

from tfkit.errors import UsageError


def calibrate_ranges(qat_model, clips: np.ndarray, *, batch_size: int = 16) -> int:
    """Start every activation range of a fresh QAT model where post-training int8 would put it:
    the min/max (0 included) of the float activations over `clips` (normalized float clips).
    Returns how many ranges were set.

    TFMOT starts each moving-average range at [-6, 6] and moves it by an EMA of decay 0.999 per
    training step, so a short fine-tune (tens of steps) ends with ranges still near [-6, 6]:
    ReLU6 outputs lose half their codes to negatives, logits beyond 6 are clipped. The int8 model
    then takes those ranges (measured: benchmarks/qat_vs_ptq.py, docs/compression_findings.md).
    The pass runs in inference mode (BatchNorm on its moving statistics, no dropout) with every
    quantizer observing instead of rounding, so the ranges are those of the float model, as the
    converter's calibration would measure them; weight ranges are set from the weights.

    Example:
        >>> calibrate_ranges(quantize_aware(model), clips[:64])  # doctest: +SKIP
        41
    """
    from tfkit._compat.keras import tf, tfmot

    T, seen = tf(), {}
    tfmot()  # TensorFlow loaded as tfkit loads it, before TFMOT's internals
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    def observe(inputs, min_var, max_var, per_channel=False, symmetric=False, narrow_range=False, **_):
        axes = list(range(len(inputs.shape) - 1)) if per_channel and len(inputs.shape) >= 2 else None
        lo = T.minimum(T.reduce_min(inputs, axis=axes), 0.0)
        hi = T.maximum(T.reduce_max(inputs, axis=axes), 0.0)
        if symmetric:  # as MovingAvgQuantize widens a symmetric range
            ratio = -1.0 if narrow_range else -254.0 / 256.0
            lo, hi = T.minimum(lo, hi / ratio), T.maximum(hi, lo * ratio)
        key = id(min_var)
        old = seen.get(key)
        lo, hi = (np.asarray(lo), np.asarray(hi)) if old is None else (np.minimum(old[1], lo), np.maximum(old[2], hi))
        seen[key] = (min_var, lo, hi, max_var)
        return inputs

    def weights_too(original):
        def run(inputs, min_var, max_var, *args, **kwargs):
            kwargs["is_training"] = True  # sets the weight (or input) range, as the first training step would
            original(inputs, min_var, max_var, *args, **kwargs)
            return inputs
        return run

    patched = {"MovingAvgQuantize": observe, "LastValueQuantize": weights_too(quant_ops.LastValueQuantize),
               "AllValuesQuantize": weights_too(quant_ops.AllValuesQuantize)}
    saved = {name: getattr(quant_ops, name) for name in patched}
    clips = np.asarray(clips, np.float32)
    if not len(clips):
        raise UsageError("calibrate_ranges got no clips")
    try:
        for name, fn in patched.items():
            setattr(quant_ops, name, fn)
        for i in range(0, len(clips), batch_size):
            qat_model(clips[i:i + batch_size], training=False)
    finally:
        for name, fn in saved.items():
            setattr(quant_ops, name, fn)
    for min_var, lo, hi, max_var in seen.values():
        min_var.assign(np.broadcast_to(lo, min_var.shape).astype(np.float32))
        max_var.assign(np.broadcast_to(hi, max_var.shape).astype(np.float32))
    return len(seen)


def freeze_batchnorm(qat_model) -> int:
    """Run every BatchNormalization of a QAT model on its moving statistics while it fine-tunes
    (tf_keras runs a non-trainable BN in inference mode: no batch statistics, no updates, gamma
    and beta fixed). The fake-quant then trains against the normalization the int8 model folds
    into its convs, not against each batch's. Returns how many BN layers were frozen.

    Example:
        >>> freeze_batchnorm(quantize_aware(model))  # doctest: +SKIP
        19
    """
    from tfkit._compat.keras import keras

    BN, frozen = keras().layers.BatchNormalization, 0
    for layer in qat_model.layers:
        if isinstance(getattr(layer, "layer", layer), BN):
            layer.trainable = False
            frozen += 1
    return frozen


def float_from_qat(qat_model, float_model):
    """A copy of `float_model` carrying the QAT-tuned float weights of `qat_model` (its
    `quantize_aware` copy), fake-quant removed: what the streaming form is built from, since
    TFMOT cannot wrap a stream model's state inputs. Its int8 stream is then calibrated after
    training as usual; the weights have learned int8's rounding. Measured on the default model
    (docs/compression_findings.md): int8/float stream agreement on real footage 0.962 -> 0.994.

    Example:
        >>> tuned = float_from_qat(qat, model); stream = to_streaming(tuned, spec)  # doctest: +SKIP
    """
    from tfkit.models.clone import clone_wrapped
    from tfkit.models.layers import custom_objects

    out = clone_wrapped(float_model, lambda fresh, _: fresh, custom_objects())
    by_name = {getattr(layer, "layer", layer).name: layer for layer in qat_model.layers}
    for target in out.layers:
        if not target.weights:
            continue
        source = by_name.get(target.name)
        if source is None:  # a BN TFMOT folded away never is: BN stays a layer in QAT
            raise UsageError(f"layer {target.name!r} of {float_model.name!r} has no counterpart in the QAT model")
        own = {w.name.split("/")[-1]: w for w in source.weights}
        target.set_weights([own[w.name.split("/")[-1]].numpy() for w in target.weights])
    return out


def train_qat(qat_model, train, val, config=None, *, progress: bool = True, symmetries: dict | None = None,
              freeze_bn: bool = True):
    """Fine-tune a QAT model (from `quantize_aware`, ideally with `calibration=`) on ClipSets;
    returns tfkit.train's TrainResult. QAT starts from trained float weights, so the default is
    a gentle run: 6 epochs at a tenth of the float learning rate. `freeze_bn` (default) keeps
    every BatchNormalization on its moving statistics (`freeze_batchnorm`), the normalization
    the int8 model folds into its convs.

    Measured on the default model over seeds (benchmarks/qat_vs_ptq.py): with TFMOT's [-6, 6]
    starting ranges and BN on batch statistics, 2 epochs ended 0 to 1.8 points below post-training
    int8; calibrated ranges, frozen BN and 6 epochs ended at or above it in every seed.

    Example:
        >>> result = train_qat(quantize_aware(model, calibration=clips), data.train, data.val)  # doctest: +SKIP
        >>> result.val_accuracy
    """
    from tfkit.train import TrainConfig, train_classifier

    config = config or TrainConfig(epochs=6, learning_rate=2e-4)
    if freeze_bn:
        freeze_batchnorm(qat_model)
    return train_classifier(qat_model, train, val, config, progress=progress, symmetries=symmetries)
