"""The only place that chooses tf_keras (Keras 2) for tfkit.

TFMOT 0.8 works only on tf_keras models, so every model tfkit builds, loads or trains goes through
`keras()`. Nothing happens at import: TensorFlow is loaded on the first call, and the environment
variable TFMOT needs is set only then, and only if the caller has not set it.

Example:
    >>> from tfkit._compat.keras import keras, tf
    >>> layer = keras().layers.Dense(4)
"""
from __future__ import annotations

import functools
import os
from types import ModuleType

from tfkit.errors import ToolNotFoundError


@functools.cache
def tf() -> ModuleType:
    """Import TensorFlow with legacy Keras selected (tf.keras is tf_keras afterwards)."""
    # Must precede the first TensorFlow import; setdefault respects a caller's explicit choice.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tensorflow
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ToolNotFoundError(
            f"TensorFlow is not importable ({e}). Install tfkit's dependencies: pip install -e ."
        ) from e
    from tfkit._compat import tflogs

    if tflogs.mode() == tflogs.QUIET:  # the CLI (or a child it started) without --verbose
        tflogs.quiet_python_loggers()
    return tensorflow


@functools.cache
def keras() -> ModuleType:
    """The tf_keras module (Keras 2), the one TFMOT accepts."""
    tf()
    try:
        import tf_keras
    except ImportError as e:  # pragma: no cover
        raise ToolNotFoundError(
            f"tf_keras is not importable ({e}); TFMOT needs it: pip install 'tf-keras==2.21.*'"
        ) from e
    return tf_keras


@functools.cache
def tfmot() -> ModuleType:
    keras()
    import tensorflow_model_optimization as mot

    return mot


def is_tf_keras_model(obj: object) -> bool:
    """True for a tf_keras model; False for Keras 3 models (which TFMOT cannot take)."""
    return isinstance(obj, keras().Model)


def versions() -> dict[str, str]:
    """Tool versions recorded in every manifest step that touches TensorFlow."""
    out = {"tensorflow": tf().__version__, "tf_keras": keras().__version__}
    try:
        from importlib.metadata import version

        out["tensorflow_model_optimization"] = version("tensorflow-model-optimization")
        out["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    return out
