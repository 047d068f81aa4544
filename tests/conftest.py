"""Session-scoped fixtures: one tiny end-to-end run shared by the integration and CLI tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = dict(videos_per_class=4, video_frames=12, video_size=40, frames=4, size=32, stride=2, val_fraction=0.25)


@pytest.fixture(scope="session")
def tiny_demo_config():
    from tfkit.models.spec import VideoModelSpec
    from tfkit.pipeline import DemoConfig
    from tfkit.steps.bench import BenchStepConfig
    from tfkit.steps.data import DataConfig
    from tfkit.train import TrainConfig

    model = VideoModelSpec(alpha=0.35, stages=3, head_channels=32, frame_stack=True)
    return DemoConfig(data=DataConfig(**TINY), model=model, train=TrainConfig(epochs=2, batch_size=8),
                      bench=BenchStepConfig(runs=5, warmup=1))


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory, tiny_demo_config) -> tfkit.pipeline.DemoResult:  # noqa: F821
    """The demo pipeline on tiny settings (4 frames of 32 px, 2 epochs): every step, real files."""
    from tfkit.pipeline import demo
    from tfkit.steps.base import RunContext

    out = tmp_path_factory.mktemp("tiny_demo")
    return demo(out, tiny_demo_config, RunContext(progress=False, log=lambda m: None))


@pytest.fixture(scope="session")
def tiny_data(tiny_demo):
    return tiny_demo.artifacts["data"]


@pytest.fixture(scope="session")
def tiny_trained(tiny_demo):
    return tiny_demo.artifacts["train"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
