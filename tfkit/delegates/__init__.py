"""Delegate providers: can a delegate run this artifact, and how much of it.

Example:
    >>> from tfkit.delegates import check_file
    >>> [c.summary() for c in check_file("model.tflite", ["gpu"])]  # doctest: +SKIP
"""
from tfkit.delegates.base import (
    DELEGATES,
    ENTRY_POINT_GROUP,
    Coverage,
    DelegateProvider,
    OpCoverage,
    delegate_names,
    get_delegate,
)
from tfkit.delegates.check import CheckOptions, check_bytes, check_file

__all__ = ["DELEGATES", "ENTRY_POINT_GROUP", "CheckOptions", "Coverage", "DelegateProvider", "OpCoverage", "check_bytes",
           "check_file", "delegate_names", "get_delegate"]
