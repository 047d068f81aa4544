"""tfkit: video deep-learning models from Keras to fast, small TensorFlow Lite (LiteRT) artifacts.

The public API. Importing tfkit loads no TensorFlow; each name is imported on first use.

Example:
    >>> import tfkit
    >>> model = tfkit.build(tfkit.VideoModelSpec(num_classes=7))  # doctest: +SKIP
    >>> result = tfkit.demo("out/")  # doctest: +SKIP
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "VideoModelSpec": "tfkit.models.spec",
    "build": "tfkit.models",
    "load_model": "tfkit.models.io",
    "save_model": "tfkit.models.io",
    "load_user_model": "tfkit.models.user",
    "UserModelInfo": "tfkit.models.user",
    "ClipSpec": "tfkit.types",
    "Precision": "tfkit.types",
    "load_dataset": "tfkit.data",
    "generate_motion_dataset": "tfkit.data",
    "TrainConfig": "tfkit.train",
    "train_classifier": "tfkit.train",
    "PruneConfig": "tfkit.optimize.prune",
    "prune_magnitude": "tfkit.optimize.prune",
    "ChannelConfig": "tfkit.optimize.channels",
    "prune_channels": "tfkit.optimize.channels",
    "StructuredConfig": "tfkit.optimize.structured",
    "structured_prune": "tfkit.optimize.structured",
    "ClusterConfig": "tfkit.optimize.cluster",
    "cluster_weights": "tfkit.optimize.cluster",
    "LowRankConfig": "tfkit.optimize.lowrank",
    "factorize": "tfkit.optimize.lowrank",
    "DistillConfig": "tfkit.optimize.distill",
    "distill": "tfkit.optimize.distill",
    "convert_keras": "tfkit.convert.tflite",
    "check_parity": "tfkit.convert.parity",
    "ModelMetadata": "tfkit.convert.metadata",
    "read_metadata": "tfkit.convert.metadata",
    "embed_metadata": "tfkit.convert.metadata",
    "check_file": "tfkit.delegates",
    "check_bytes": "tfkit.delegates",
    "get_delegate": "tfkit.delegates",
    "DelegateProvider": "tfkit.delegates",
    "benchmark": "tfkit.bench",
    "BenchConfig": "tfkit.bench",
    "write_report": "tfkit.report",
    "run_step": "tfkit.steps",
    "Artifact": "tfkit.artifacts",
    "demo": "tfkit.pipeline",
    "load_recipe": "tfkit.recipe",
    "run_recipe": "tfkit.recipe",
    "DemoConfig": "tfkit.pipeline",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tfkit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
