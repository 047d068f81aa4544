"""Steps: each turns input artifacts into one new artifact folder with its manifest.

Example:
    >>> from tfkit.steps import STEPS
    >>> STEPS.names()
    ['bench', 'build', 'convert', 'data', 'prune', 'report', 'train']
"""
from tfkit.steps import bench as _bench  # noqa: F401  (each module registers its steps)
from tfkit.steps import check as _check  # noqa: F401
from tfkit.steps import convert as _convert  # noqa: F401
from tfkit.steps import data as _data  # noqa: F401
from tfkit.steps import model as _model  # noqa: F401
from tfkit.steps import optimize as _optimize  # noqa: F401
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput, run_step

__all__ = ["STEPS", "RunContext", "Step", "StepOutput", "run_step"]
