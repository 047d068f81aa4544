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
    """Build the model a spec describes (random initial weights)."""
    return MODELS.get(spec.family)(spec)


def model_names() -> list[str]:
    return MODELS.names()


__all__ = ["MODELS", "VideoModelSpec", "build", "build_streaming", "model_names", "run_stream", "stream_states",
           "to_streaming"]
