"""The video model zoo. `build(spec)` returns a tf_keras Functional model; importing this package
loads no TensorFlow (families import it when they build).

Example:
    >>> from tfkit.models import VideoModelSpec, build
    >>> model = build(VideoModelSpec(family="mobilenet_v2", num_classes=7))  # doctest: +SKIP
"""
from __future__ import annotations

from tfkit.models import backbones as _backbones  # noqa: F401  (registers its families)
from tfkit.models.registry import MODELS
from tfkit.models.spec import VideoModelSpec
from tfkit.models.streaming import build_streaming, run_stream, stream_states, to_streaming


def build(spec: VideoModelSpec):
    """Build the model a spec describes, its random initial weights drawn from `spec.seed`: the
    same spec gives the same weights (the initializers are unseeded Keras ones, which draw their
    seeds from the generator `set_random_seed` resets)."""
    family = MODELS.get(spec.family)  # an unknown name fails before TensorFlow loads
    from tfkit._compat.keras import keras

    keras().utils.set_random_seed(int(spec.seed))
    return family(spec)


def model_names() -> list[str]:
    return MODELS.names()


__all__ = ["MODELS", "VideoModelSpec", "build", "build_streaming", "model_names", "run_stream", "stream_states",
           "to_streaming"]
