"""The zoo's frame backbones as data (stage tables), one generic builder, and the temporal module
(TSM or causal (2+1)D) woven into every block.

Frames are folded into the batch axis, so every convolution is a plain 2-D one (fast on every
LiteRT backend; no Conv3D, no TimeDistributed, no Lambda). A family is a stage table plus stem/head
widths and its activation; `VideoModelSpec` scales it by width, depth, resolution and the compound
coefficient, and picks the temporal module.

Example:
    >>> from tfkit.models import build
    >>> model = build(VideoModelSpec(family="mobilenet_v3", temporal="2plus1d"))  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tfkit._compat.keras import keras
from tfkit.models.blocks import conv_bn, make_divisible, mbconv
from tfkit.models.registry import MODELS
from tfkit.models.spec import VideoModelSpec
from tfkit.models.temporal import ClipTime, StreamTime


@dataclass(frozen=True)
class Stage:
    expand: float  # expansion ratio of the first 1x1 conv
    channels: int  # output channels (before the width multiplier)
    repeats: int  # blocks (before the depth multiplier)
    stride: int  # stride of the first block
    kernel: int = 3  # depthwise kernel
    se: bool = False  # squeeze-and-excite
    act: str = "relu6"  # relu6 | relu | hswish


@dataclass(frozen=True)
class Backbone:
    stages: tuple[Stage, ...]
    stem: int
    head: int
    act: str  # stem/head activation
    scale_stem_head: bool = True  # EfficientNet-Lite keeps stem and head fixed when widening
    description: str = ""


S = Stage
BACKBONES = {
    # Sandler et al. 2018, Table 2.
    "mobilenet_v2": Backbone((S(1, 16, 1, 1), S(6, 24, 2, 2), S(6, 32, 3, 2), S(6, 64, 4, 2), S(6, 96, 3, 1),
                              S(6, 160, 3, 2), S(6, 320, 1, 1)), stem=32, head=1280, act="relu6",
                             description="MobileNetV2 inverted residuals, ReLU6"),
    # MobileNetV3-Small (Howard et al. 2019, Table 2), blocks of equal shape grouped into stages;
    # hard-swish and squeeze-excite as in the paper, in their int8/XNNPACK-friendly forms.
    "mobilenet_v3": Backbone((S(1, 16, 1, 2, 3, True, "relu"), S(4.5, 24, 1, 2, 3, False, "relu"),
                              S(3.67, 24, 1, 1, 3, False, "relu"), S(4, 40, 1, 2, 5, True, "hswish"),
                              S(6, 40, 2, 1, 5, True, "hswish"), S(3, 48, 2, 1, 5, True, "hswish"),
                              S(6, 96, 3, 2, 5, True, "hswish")), stem=16, head=576, act="hswish",
                             description="MobileNetV3-Small style: hard-swish, squeeze-excite, 5x5 kernels"),
    # EfficientNet-Lite0: EfficientNet-B0's MBConv stages without SE and with ReLU6 (quantizes well).
    "efficientnet_lite": Backbone((S(1, 16, 1, 1), S(6, 24, 2, 2), S(6, 40, 2, 2, 5), S(6, 80, 3, 2),
                                   S(6, 112, 3, 1, 5), S(6, 192, 4, 2, 5), S(6, 320, 1, 1)),
                                  stem=32, head=1280, act="relu6", scale_stem_head=False,
                                  description="EfficientNet-Lite style MBConv: no SE, ReLU6, fixed stem/head"),
}


def build_video_model(spec: VideoModelSpec, *, stream: bool = False, part: str = "full"):
    """Clip model: (B, T, H, W, 3) float frames -> (B, num_classes) logits, plus `exit_logits` when
    spec.early_exit. stream=True: one frame and explicit state in, logits and new state out (needs
    spec.causal). part="exit": only the trunk up to the early exit and its classifier (the cheap
    first pass of a dynamic early-exit runtime)."""
    K = keras()
    net = BACKBONES[spec.family]
    time = (StreamTime if stream else ClipTime)(spec)
    width = spec.width_multiplier
    temporal = spec.frames > 1
    x = time.frames()
    if spec.frame_stack and temporal:
        # Copies of the frame shifted in time: [t-1, t+1, t] (causal: [t-1, t]); the stem's full
        # 3x3 conv then learns spatio-temporal, direction-selective filters at input resolution.
        x = time.frame_stack(x)
    stem = make_divisible(net.stem * width) if net.scale_stem_head else net.stem
    x = conv_bn(x, stem, 3, 2, name="stem", act=net.act)
    if spec.stem_shift and temporal:
        # Early fusion: deeper temporal modules see motion shrunk below a pixel by the strides.
        x = time.temporal(x, "stem_shift" if spec.temporal == "tsm" else "stem_temporal")
    exit_logits = None
    for index, stage in enumerate(net.stages[:spec.stages]):
        repeats = max(1, math.ceil(stage.repeats * spec.depth_multiplier))
        for i in range(repeats):
            x = mbconv(x, expand=stage.expand, out_channels=make_divisible(stage.channels * width),
                       stride=stage.stride if i == 0 else 1, kernel=stage.kernel, se=stage.se, act=stage.act,
                       name=f"s{index}b{i}", time=time if temporal else None, temporal=spec.temporal)
        if spec.early_exit and index + 1 == spec.early_exit:
            exit_logits = _exit_head(x, spec, time)
            if part == "exit":
                return time.model([exit_logits], ["exit_logits"])
    head = spec.head_channels or (make_divisible(net.head * max(1.0, width)) if net.scale_stem_head else net.head)
    x = conv_bn(x, head, 1, 1, name="head", act=net.act)
    x = K.layers.GlobalAveragePooling2D(name="frame_pool")(x)
    x = time.pool(x)
    if spec.dropout:
        x = K.layers.Dropout(spec.dropout, name="dropout")(x)
    logits = K.layers.Dense(spec.num_classes, name="logits")(x)
    if exit_logits is None:
        return time.model([logits], ["logits"])
    return time.model([logits, exit_logits], ["logits", "exit_logits"])


def _exit_head(x, spec: VideoModelSpec, time):
    """A cheap classifier on intermediate features: pool space, pool time, one Dense."""
    K = keras()
    y = K.layers.GlobalAveragePooling2D(name="exit_frame_pool")(x)
    y = time.pool(y, name="exit")
    return K.layers.Dense(spec.num_classes, name="exit_logits")(y)


class Family:
    """A registered zoo family: its backbone's description, and `build_video_model` bound to it."""

    def __init__(self, name: str, backbone: Backbone):
        self.name, self.backbone = name, backbone
        self.__doc__ = f"{backbone.description}; temporal: tsm | 2plus1d; clip and streaming forms"

    def __call__(self, spec: VideoModelSpec, *, stream: bool = False, part: str = "full"):
        return build_video_model(spec, stream=stream, part=part)


for _name, _backbone in BACKBONES.items():
    MODELS.register(_name)(Family(_name, _backbone))

__all__ = ["BACKBONES", "Backbone", "Family", "Stage", "build_video_model"]
