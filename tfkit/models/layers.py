"""Custom tf_keras layers for video models: time folding, temporal shift and temporal-conv
buffers, int8-friendly activations, sub-pixel upsampling. No Lambda layers,
so TFMOT and the TFLite converter accept every model built from them.

All layers work on frames folded into the batch axis, (B*T, H, W, C), the form the TFLite CPU/GPU
kernels like best; `frames` tells them how to unfold.

Example:
    >>> from tfkit.models.layers import custom_objects
    >>> sorted(custom_objects())
    ['DepthToSpace', 'FoldTime', 'FrameStack', 'HardSigmoid', 'HardSwish', 'RowsToTime', 'StreamBuffer', 'StreamShift', 'TemporalShift', 'TimeToRows', 'UnfoldTime', 'WindowMean']
"""
from __future__ import annotations

import functools

from tfkit._compat.keras import keras, tf


@functools.cache
def custom_objects() -> dict[str, type]:
    """The layer classes, created on first use so that importing this module loads no TensorFlow."""
    K, T = keras(), tf()

    class FoldTime(K.layers.Layer):
        """(B, T, H, W, C) -> (B*T, H, W, C)."""

        def call(self, x):
            s = x.shape
            return T.reshape(x, (-1, s[2], s[3], s[4]))

        def compute_output_shape(self, input_shape):
            return (None, *input_shape[2:])

    class UnfoldTime(K.layers.Layer):
        """(B*T, ...) -> (B, T, ...)."""

        def __init__(self, frames: int, **kw):
            super().__init__(**kw)
            self.frames = int(frames)

        def call(self, x):
            return T.reshape(x, (-1, self.frames, *x.shape[1:]))

        def get_config(self):
            return {**super().get_config(), "frames": self.frames}

    class TemporalShift(K.layers.Layer):
        """Temporal Shift Module (Lin et al., 2019) on (B*T, H, W, C).

        1/shift_div of the channels take the previous frame's values, another 1/shift_div the
        next frame's (causal: none), the rest stay; borders are zero-padded. No parameters. It
        runs as one DEPTHWISE_CONV_2D over (B, T, H*W, C) whose fixed (3, 1) kernel holds a
        single 1 per channel (`shift_taps`): XNNPACK's depthwise kernel moves the data 1.4-4x
        faster than the RESHAPE/STRIDED_SLICE/PAD/CONCATENATION form it replaced (measured on a
        Xeon: 0.047 -> 0.012 ms float32, 0.043 -> 0.013 ms int8 at 8 x 16 x 16 x 8), and every
        delegate runs it. Exact in float; in int8 the 1s quantize exactly and only the output's
        requantization rounds (half a step at most).
        """

        def __init__(self, frames: int, shift_div: int = 8, causal: bool = False, **kw):
            super().__init__(**kw)
            self.frames, self.shift_div, self.causal = int(frames), int(shift_div), bool(causal)

        def call(self, x):
            h, w, c = x.shape[1], x.shape[2], x.shape[3]
            fold = shift_fold(c, self.shift_div)
            if self.frames < 2 or 2 * fold > c:
                return x
            taps = T.constant(shift_taps(c, fold, self.causal), dtype=x.dtype)
            v = T.nn.depthwise_conv2d(T.reshape(x, (-1, self.frames, h * w, c)), taps, [1, 1, 1, 1], "SAME")
            return T.reshape(v, (-1, h, w, c))

        def get_config(self):
            return {**super().get_config(), "frames": self.frames, "shift_div": self.shift_div,
                    "causal": self.causal}

    class FrameStack(K.layers.Layer):
        """Each frame with its neighbours in time stacked as channels, (B*T, H, W, C) ->
        (B*T, H, W, k*C): [t-1, t+1, t] (causal: [t-1, t]), zeros beyond the clip. The same
        values as concatenating k copies and shifting them with TemporalShift(shift_div=k).

        Interleaving k small channel groups per pixel is what costs (a CONCATENATION of
        3-channel tensors copies 12 bytes at a time), so the clip is made planar first: one
        TRANSPOSE to (1, C*B, T, H*W), the shifts in time as PADs of whole frames, one
        CONCATENATION of contiguous blocks, and one TRANSPOSE back. Measured on a Xeon for an
        8 x 32 x 32 x 3 clip: 0.049 ms float32 / 0.033 ms int8, against 0.087 / 0.067 for the
        per-pixel concatenation. Every tensor stays 4-D (the GPU delegate's limit)."""

        def __init__(self, frames: int, causal: bool = False, **kw):
            super().__init__(**kw)
            self.frames, self.causal = int(frames), bool(causal)

        def call(self, x):
            h, w, c = x.shape[1], x.shape[2], x.shape[3]
            k = 2 if self.causal else 3
            planar = T.transpose(T.reshape(x, (1, -1, c, 1)), (0, 2, 1, 3))  # (1, C, B*T*H*W, 1)
            v = T.reshape(planar, (1, -1, self.frames, h * w))  # (1, C*B, T, H*W)
            past = T.pad(v[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])
            parts = [past, v] if self.causal else [past, T.pad(v[:, :, 1:], [[0, 0], [0, 0], [0, 1], [0, 0]]), v]
            stacked = T.reshape(T.concat(parts, axis=1), (1, k * c, -1, 1))  # tap-major channel rows
            return T.reshape(T.transpose(stacked, (0, 2, 1, 3)), (-1, h, w, k * c))

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], (2 if self.causal else 3) * input_shape[-1])

        def get_config(self):
            return {**super().get_config(), "frames": self.frames, "causal": self.causal}

    class StreamShift(K.layers.Layer):
        """The causal TemporalShift for one frame: [x_t, state] -> [shifted x_t, new state].

        The state holds the previous frame's first `fold` channels; zeros at the first frame give
        exactly the clip model's zero padding."""

        def __init__(self, shift_div: int = 8, **kw):
            super().__init__(**kw)
            self.shift_div = int(shift_div)

        def call(self, inputs):
            x, state = inputs
            fold = shift_fold(x.shape[-1], self.shift_div)
            return T.concat([state, x[..., fold:]], axis=-1), x[..., :fold]

        def get_config(self):
            return {**super().get_config(), "shift_div": self.shift_div}

    class WindowMean(K.layers.Layer):
        """Streaming temporal average over the last `frames` frames, the clip model's window:
        [x_t, window, filled] -> [mean, new window, new filled].

        The window holds the previous frames-1 feature vectors. `filled` is the frame count in
        unary: slot i is 1 once i+1 frames were seen, so it saturates at all ones by itself and
        every state stays bounded however long the stream runs (a running sum would outgrow its
        int8 range after a few clip lengths). 1/count is read off `filled` as a one-hot (adjacent
        differences) times the constant reciprocals 1, 1/2, ..., 1/frames: the graph has no DIV
        and no MINIMUM, the two ops XNNPACK declines, the Edge TPU cannot map and int16x8 has no
        kernel for; the float outputs equal total / min(count, frames) to float rounding."""

        def __init__(self, frames: int, **kw):
            super().__init__(**kw)
            self.frames = int(frames)

        def call(self, inputs):
            x, window, filled = inputs  # (1, C), (1, frames-1, C), (1, frames)
            one, zero = T.ones((1, 1), x.dtype), T.zeros((1, 1), x.dtype)  # streams run at batch 1
            filled = T.concat([one, filled[:, :-1]], axis=1)  # one more frame, saturating at all ones
            last = filled - T.concat([filled[:, 1:], zero], axis=1)  # one-hot at count - 1
            reciprocals = T.constant([[1.0 / (i + 1) for i in range(self.frames)]], x.dtype)
            inverse_count = T.reduce_sum(last * reciprocals, axis=1, keepdims=True)
            total = T.reduce_sum(window, axis=1) + x
            new_window = T.concat([window[:, 1:], x[:, None]], axis=1)
            return total * inverse_count, new_window, filled

        def get_config(self):
            return {**super().get_config(), "frames": self.frames}

    class HardSwish(K.layers.Layer):
        """hard-swish(x) = x * relu6(x + 3) / 6 (MobileNetV3), written as (x / 6) * relu6(x + 3).

        The textbook form is fused by the converter into one HARD_SWISH op, which XNNPACK does not
        take in int8: every such op cuts the int8 graph into another partition (MoViNet-A0's int8 is
        2x slower than float on x86 for this reason). This order converts to MUL, ADD(+RELU6), MUL,
        all delegated in float and int8."""

        def call(self, x):
            return (x * (1.0 / 6.0)) * T.nn.relu6(x + 3.0)

    class HardSigmoid(K.layers.Layer):
        """relu6(x + 3) / 6, the squeeze-excite gate of MobileNetV3 (Keras' own "hard_sigmoid" is
        0.2x + 0.5, which converts to MINIMUM + RELU and splits int8 graphs for XNNPACK)."""

        def call(self, x):
            return T.nn.relu6(x + 3.0) * (1.0 / 6.0)

    class TimeToRows(K.layers.Layer):
        """(B*T, H, W, C) -> (B, T, H*W, C): time becomes an image axis, so a temporal convolution
        is a (k, 1) DepthwiseConv2D (no Conv3D, which has no fast path in LiteRT)."""

        def __init__(self, frames: int, **kw):
            super().__init__(**kw)
            self.frames = int(frames)

        def call(self, x):
            h, w, c = x.shape[1], x.shape[2], x.shape[3]
            return T.reshape(x, (-1, self.frames, h * w, c))

        def get_config(self):
            return {**super().get_config(), "frames": self.frames}

    class RowsToTime(K.layers.Layer):
        """(B, T, H*W, C) -> (B*T, H, W, C), the inverse of TimeToRows."""

        def __init__(self, height: int, width: int, **kw):
            super().__init__(**kw)
            self.height, self.width = int(height), int(width)

        def call(self, x):
            return T.reshape(x, (-1, self.height, self.width, x.shape[-1]))

        def get_config(self):
            return {**super().get_config(), "height": self.height, "width": self.width}

    class StreamBuffer(K.layers.Layer):
        """The causal temporal convolution's input window for one frame: [x_t (1, 1, N, C), state
        (1, k-1, N, C)] -> [window (1, k, N, C), new state = the window's last k-1 rows]. Zeros at
        the first frame give exactly the clip model's causal zero padding."""

        def call(self, inputs):
            x, state = inputs
            window = T.concat([state, x], axis=1)
            return window, window[:, 1:]

    class DepthToSpace(K.layers.Layer):
        """Sub-pixel upsampling (B, H, W, C*r*r) -> (B, H*r, W*r, C): DEPTH_TO_SPACE, an int8 builtin."""

        def __init__(self, block_size: int = 2, **kw):
            super().__init__(**kw)
            self.block_size = int(block_size)

        def call(self, x):
            return T.nn.depth_to_space(x, self.block_size)

        def compute_output_shape(self, input_shape):
            b, h, w, c = input_shape
            r = self.block_size
            return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

        def get_config(self):
            return {**super().get_config(), "block_size": self.block_size}

    return {"FoldTime": FoldTime, "UnfoldTime": UnfoldTime, "TemporalShift": TemporalShift, "FrameStack": FrameStack,
            "StreamShift": StreamShift, "WindowMean": WindowMean, "HardSwish": HardSwish,
            "HardSigmoid": HardSigmoid, "TimeToRows": TimeToRows, "RowsToTime": RowsToTime,
            "StreamBuffer": StreamBuffer, "DepthToSpace": DepthToSpace}


def shift_fold(channels: int, shift_div: int) -> int:
    """How many channels one temporal shift moves."""
    return max(channels // shift_div, 1)


def shift_taps(channels: int, fold: int, causal: bool = False):
    """TemporalShift's depthwise kernel, (3, 1, channels, 1) over (time, pixels): tap 0 reads
    frame t-1, tap 1 frame t, tap 2 frame t+1. The first `fold` channels take t-1, the next
    `fold` t+1 (not when causal), the rest t.

    >>> shift_taps(4, 1)[:, 0, :, 0].tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]]
    """
    import numpy as np

    taps = np.zeros((3, 1, channels, 1), np.float32)
    taps[1, 0, :, 0] = 1.0
    taps[:, 0, :fold, 0] = np.array([[1.0], [0.0], [0.0]])
    if not causal:
        taps[:, 0, fold:2 * fold, 0] = np.array([[0.0], [0.0], [1.0]])
    return taps


def layer(name: str):
    return custom_objects()[name]
