"""Imports the built-in delegate providers so that they register themselves."""
from tfkit.delegates import edgetpu, gpu, nnapi, xnnpack  # noqa: F401
