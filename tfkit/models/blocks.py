"""Building blocks shared by the zoo families (tf_keras functional API).

Example:
    >>> x = mbconv(x, expand=6, out_channels=24, stride=2, name="s1b0")  # doctest: +SKIP
"""
from __future__ import annotations

from tfkit._compat.keras import keras
from tfkit.models.layers import layer


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10% (MobileNet rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def activation(x, kind: str, name: str):
    """relu6 | relu | hswish (hard-swish in the form XNNPACK delegates in int8)."""
    K = keras()
    if kind == "relu6":
        return K.layers.ReLU(6.0, name=name)(x)
    if kind == "relu":
        return K.layers.ReLU(name=name)(x)
    if kind == "hswish":
        return layer("HardSwish")(name=name)(x)
    raise ValueError(f"unknown activation {kind!r}")


def conv_bn(x, filters: int, kernel: int, stride: int, *, name: str, act: bool | str = True):
    """Conv2D + BatchNorm (+ activation: True = relu6, a name, or False for none)."""
    K = keras()
    x = K.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    if not act:
        return x
    return activation(x, "relu6" if act is True else act, f"{name}_relu" if act is True else f"{name}_act")


def squeeze_excite(x, *, name: str, ratio: float = 0.25):
    """Channel attention (Hu et al. 2018) with MobileNetV3's hard-sigmoid gate: MEAN, two 1x1
    convs and MUL, all delegated by XNNPACK in float and int8."""
    K = keras()
    channels = x.shape[-1]
    s = K.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = K.layers.Conv2D(make_divisible(channels * ratio), 1, activation="relu", name=f"{name}_reduce")(s)
    s = K.layers.Conv2D(channels, 1, name=f"{name}_expand")(s)
    s = layer("HardSigmoid")(name=f"{name}_gate")(s)
    return K.layers.Multiply(name=f"{name}_scale")([x, s])


def mbconv(x, *, expand: float, out_channels: int, stride: int, name: str, kernel: int = 3, se: bool = False,
           act: str = "relu6", time=None, temporal: str = "tsm"):
    """Inverted residual (MobileNetV2/V3, EfficientNet MBConv) with a temporal module from `time`:
    "tsm" shifts channels in time at the start of the residual branch (the identity path keeps
    the frame's own features); "2plus1d" follows the spatial depthwise conv with a depthwise
    temporal conv, MoViNet's (2+1)D factorization."""
    K = keras()
    in_channels = x.shape[-1]
    residual = stride == 1 and in_channels == out_channels
    y = x
    if time is not None and temporal == "tsm" and residual:
        y = time.temporal(y, f"{name}_shift")
    if expand != 1:
        y = conv_bn(y, make_divisible(in_channels * expand), 1, 1, name=f"{name}_expand", act=act)
    y = K.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = K.layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(y)
    y = activation(y, act, f"{name}_dw_{'relu' if act == 'relu6' else 'act'}")
    if time is not None and temporal == "2plus1d":
        y = time.temporal(y, f"{name}_temporal")
    if se:
        y = squeeze_excite(y, name=f"{name}_se")
    y = conv_bn(y, out_channels, 1, 1, name=f"{name}_project", act=False)
    return K.layers.Add(name=f"{name}_add")([x, y]) if residual else y
