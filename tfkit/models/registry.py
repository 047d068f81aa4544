"""The model-family registry. Families register themselves in their own module."""
from tfkit.registry import Registry

MODELS: Registry = Registry("model")
