"""MobileNetV2 frame backbone + temporal shift (TSM) + temporal average pooling head.

Frames are folded into the batch axis, so every convolution is a plain 2-D one (fast on every
LiteRT backend; no Conv3D, no TimeDistributed, no Lambda).

Example:
    >>> from tfkit.models import build
    >>> model = build(VideoModelSpec(num_classes=7))  # doctest: +SKIP
"""
from __future__ import annotations

import math

from tfkit._compat.keras import keras
from tfkit.models.blocks import conv_bn, inverted_residual, make_divisible
from tfkit.models.layers import layer
from tfkit.models.registry import MODELS
from tfkit.models.spec import VideoModelSpec

# (expansion t, channels c, repeats n, first stride s), MobileNetV2 (Sandler et al., 2018) Table 2.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@MODELS.register("tsm_mobilenet_v2")
def build_tsm_mobilenet_v2(spec: VideoModelSpec):
    """Clip model: (B, T, H, W, 3) float frames -> (B, num_classes) logits."""
    K = keras()
    clip = K.Input(shape=spec.input_shape, name="clip")
    x = layer("FoldTime")(name="fold_time")(clip)
    if spec.frame_stack and spec.frames > 1:
        # [x, x, x] shifted by thirds = [frame t+1, frame t-1, frame t]: the stem's full 3x3 conv
        # then learns spatio-temporal (direction-selective) filters at input resolution.
        x = K.layers.Concatenate(name="frame_copies")([x, x, x])
        x = layer("TemporalShift")(frames=spec.frames, shift_div=3, name="frame_stack")(x)
    x = conv_bn(x, make_divisible(32 * spec.alpha), 3, 2, name="stem")
    if spec.stem_shift and spec.frames > 1:
        # Early fusion: deeper residual shifts see motion shrunk below a pixel by the strides.
        x = layer("TemporalShift")(frames=spec.frames, shift_div=spec.shift_div, name="stem_shift")(x)
    for stage, (t, c, n, s) in enumerate(MOBILENET_V2_STAGES[:spec.stages]):
        repeats = max(1, math.ceil(n * spec.depth))
        for i in range(repeats):
            x = inverted_residual(
                x, expand=t, out_channels=make_divisible(c * spec.alpha), stride=s if i == 0 else 1,
                name=f"s{stage}b{i}", frames=spec.frames, shift_div=spec.shift_div,
            )
    x = conv_bn(x, spec.head_channels or make_divisible(1280 * max(1.0, spec.alpha)), 1, 1, name="head")
    x = K.layers.GlobalAveragePooling2D(name="frame_pool")(x)
    x = layer("UnfoldTime")(frames=spec.frames, name="unfold_time")(x)
    x = K.layers.GlobalAveragePooling1D(name="temporal_pool")(x)
    if spec.dropout:
        x = K.layers.Dropout(spec.dropout, name="dropout")(x)
    logits = K.layers.Dense(spec.num_classes, name="logits")(x)
    return K.Model(clip, logits, name=spec.family)
