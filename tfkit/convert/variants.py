"""The converter variants, one registered entry per precision: how to set the TFLite converter,
and the parity bar the result must clear. A table, not a chain of ifs. Imports no TensorFlow.

Example:
    >>> VARIANTS.get("int8").needs_calibration
    True
"""
from __future__ import annotations

from dataclasses import dataclass

from tfkit.registry import Registry
from tfkit.types import Precision


@dataclass(frozen=True)
class Variant:
    precision: Precision
    optimize: bool  # converter.optimizations = [DEFAULT]
    needs_calibration: bool  # representative dataset required
    ops: str  # "builtins" | "int8" | "int16x8"
    float16_weights: bool = False
    integer_io: str | None = None  # dtype of model input/output ("int8", "int16"), None = float
    # Parity bar against the Keras model (on validation clips):
    max_abs_logit_diff: float | None = None  # float forms: max |keras - tflite| over logits
    min_top1_agreement: float | None = None  # quantized forms: fraction of same argmax
    description: str = ""


VARIANTS: Registry[Variant] = Registry("precision")

for _v in (
    Variant(Precision.FLOAT32, False, False, "builtins", max_abs_logit_diff=1e-3,
            description="float32 weights and activations; the reference"),
    Variant(Precision.FLOAT16, True, False, "builtins", float16_weights=True, max_abs_logit_diff=5e-2,
            description="float16 weights (half size), float compute; GPU-delegate friendly"),
    Variant(Precision.DYNAMIC, True, False, "builtins", min_top1_agreement=0.95,
            description="int8 weights, activations quantized on the fly; no calibration"),
    Variant(Precision.INT8, True, True, "int8", integer_io="int8", min_top1_agreement=0.90,
            description="full-integer int8 (int8 input/output), calibrated on representative clips"),
    Variant(Precision.INT16X8, True, True, "int16x8", min_top1_agreement=0.90,
            description="int16 activations, int8 weights (experimental in LiteRT)"),
):
    VARIANTS.register(_v.precision.value)(_v)


def precision_names() -> list[str]:
    return VARIANTS.names()
