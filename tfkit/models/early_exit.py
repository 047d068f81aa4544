"""Dynamic early exit: a cheap classifier after an intermediate stage answers when it is confident,
and only the other clips pay for the full network.

The exit model (trunk up to `spec.early_exit` stages + its classifier) shares weights with the full
model by layer name, so both convert to their own TFLite files and a runtime runs them in turn.

Example:
    >>> cheap = exit_model(trained, spec)                             # doctest: +SKIP
    >>> preds, exited = early_exit_predict(cheap_fn, full_fn, clips, threshold=0.9)  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfkit.errors import UsageError
from tfkit.models.registry import MODELS
from tfkit.models.spec import VideoModelSpec
from tfkit.models.streaming import copy_weights


def exit_model(model, spec: VideoModelSpec):
    """The early-exit part of a trained zoo `model`: clip in, `exit_logits` out."""
    if not spec.early_exit:
        raise UsageError("this spec has no early exit: set early_exit to the number of stages before the exit")
    return copy_weights(model, MODELS.get(spec.family)(spec, part="exit"))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def early_exit_predict(exit_fn: Callable[[np.ndarray], np.ndarray], full_fn: Callable[[np.ndarray], np.ndarray],
                       clips: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: the exit head's class when its softmax confidence >= `threshold`, else the full
    model's. `*_fn` map a (1, ...) clip to (1, classes) logits (Keras or TFLite). Returns
    (predictions, exited mask)."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"early-exit threshold must be in (0, 1], got {threshold}")
    preds, exited = [], []
    for clip in clips:
        p = softmax(np.asarray(exit_fn(clip[None]), np.float32)[0])
        done = bool(p.max() >= threshold)
        preds.append(int(p.argmax()) if done else int(np.argmax(full_fn(clip[None])[0])))
        exited.append(done)
    return np.array(preds), np.array(exited)
