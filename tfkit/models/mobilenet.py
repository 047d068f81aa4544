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
from tfkit.models.registry import MODELS
from tfkit.models.spec import VideoModelSpec
from tfkit.models.temporal import ClipTime, StreamTime

# (expansion t, channels c, repeats n, first stride s), MobileNetV2 (Sandler et al., 2018) Table 2.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@MODELS.register("tsm_mobilenet_v2")
def build_tsm_mobilenet_v2(spec: VideoModelSpec, *, stream: bool = False):
    """Clip model: (B, T, H, W, 3) float frames -> (B, num_classes) logits (stream=True: one frame
    and explicit state in, logits and new state out; needs spec.causal)."""
    K = keras()
    time = (StreamTime if stream else ClipTime)(spec)
    x = time.frames()
    if spec.frame_stack and spec.frames > 1:
        # Copies of the frame shifted in time: [t-1, t+1, t] (causal: [t-1, t]); the stem's full
        # 3x3 conv then learns spatio-temporal, direction-selective filters at input resolution.
        copies = 2 if spec.causal else 3
        x = K.layers.Concatenate(name="frame_copies")([x] * copies)
        x = time.shift(x, copies, "frame_stack")
    x = conv_bn(x, make_divisible(32 * spec.alpha), 3, 2, name="stem")
    if spec.stem_shift and spec.frames > 1:
        # Early fusion: deeper residual shifts see motion shrunk below a pixel by the strides.
        x = time.shift(x, spec.shift_div, "stem_shift")
    for stage, (t, c, n, s) in enumerate(MOBILENET_V2_STAGES[:spec.stages]):
        repeats = max(1, math.ceil(n * spec.depth))
        for i in range(repeats):
            x = inverted_residual(
                x, expand=t, out_channels=make_divisible(c * spec.alpha), stride=s if i == 0 else 1,
                name=f"s{stage}b{i}",
                shift=(lambda y, name: time.shift(y, spec.shift_div, name)) if spec.frames > 1 else None,
            )
    x = conv_bn(x, spec.head_channels or make_divisible(1280 * max(1.0, spec.alpha)), 1, 1, name="head")
    x = K.layers.GlobalAveragePooling2D(name="frame_pool")(x)
    x = time.pool(x)
    if spec.dropout:
        x = K.layers.Dropout(spec.dropout, name="dropout")(x)
    logits = K.layers.Dense(spec.num_classes, name="logits")(x)
    return time.model(logits)
