"""Building blocks shared by the zoo families (tf_keras functional API).

Example:
    >>> x = inverted_residual(x, expand=6, out_channels=24, stride=2, name="block1")  # doctest: +SKIP
"""
from __future__ import annotations

from tfkit._compat.keras import keras


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10% (MobileNet rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def conv_bn(x, filters: int, kernel: int, stride: int, *, name: str, act: bool = True):
    K = keras()
    x = K.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return K.layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def inverted_residual(x, *, expand: int, out_channels: int, stride: int, name: str, shift=None):
    """MobileNetV2 block; `shift(tensor, name)` (a temporal shift) opens the residual branch
    ("residual shift", which keeps the identity path's spatial features intact)."""
    K = keras()
    in_channels = x.shape[-1]
    residual = stride == 1 and in_channels == out_channels
    y = x
    if residual and shift is not None:
        y = shift(y, f"{name}_shift")
    if expand != 1:
        y = conv_bn(y, in_channels * expand, 1, 1, name=f"{name}_expand")
    y = K.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(y)
    y = K.layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = conv_bn(y, out_channels, 1, 1, name=f"{name}_project", act=False)
    return K.layers.Add(name=f"{name}_add")([x, y]) if residual else y
