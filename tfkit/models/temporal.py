"""How a zoo model handles time, as one object the family builder calls: `ClipTime` builds the
clip model (T frames folded into the batch axis), `StreamTime` the streaming model (one frame in,
explicit state tensors in and out). Both create identically named weight layers, so the streaming
model takes the clip model's weights as they are.

Example:
    >>> clip = build(spec); stream = to_streaming(clip, spec)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfkit._compat.keras import keras
from tfkit.models.layers import layer, shift_fold
from tfkit.models.spec import VideoModelSpec


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a streaming model: its input/output names and shape (batch 1)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "shift" (previous frame's channels), "buffer" (temporal conv's last k-1 frames),
    # "window" or "count" (sliding temporal mean; the count is unary: slot i is 1 once i+1 frames were seen)

    @property
    def input_name(self) -> str:
        return f"{self.name}_in"

    @property
    def output_name(self) -> str:
        return f"{self.name}_out"

    def to_dict(self) -> dict:
        return {"name": self.name, "input": self.input_name, "output": self.output_name,
                "shape": list(self.shape), "kind": self.kind}


def _identity_in_time(conv, tap: int) -> None:
    """Start a (k, 1) depthwise temporal conv as the identity (one tap = 1): training begins from
    the frame model and learns motion from there, instead of from blurred features."""
    kernel = np.zeros(conv.get_weights()[0].shape, np.float32)
    kernel[tap] = 1.0
    conv.set_weights([kernel])


class _Time:
    def __init__(self, spec: VideoModelSpec):
        self.spec = spec

    def temporal(self, x, name: str):
        """The spec's temporal module on (B*T, H, W, C) features."""
        if self.spec.temporal == "tsm":
            return self.shift(x, self.spec.shift_div, name)
        return self.temporal_conv(x, name)

    def _tconv(self, x, name: str):
        K = keras()
        conv = K.layers.DepthwiseConv2D((self.spec.temporal_kernel, 1), padding="valid", use_bias=False,
                                        name=f"{name}_tconv")
        y = conv(x)
        causal_tap = self.spec.temporal_kernel - 1
        _identity_in_time(conv, causal_tap if self.spec.causal else self.spec.temporal_kernel // 2)
        return y

    def _tbn(self, x, name: str):
        return keras().layers.BatchNormalization(momentum=0.9, name=f"{name}_tbn")(x)


class ClipTime(_Time):
    """Clip model: input (B, T, H, W, 3), frames folded into the batch axis."""

    def __init__(self, spec: VideoModelSpec):
        super().__init__(spec)
        self.inputs = [keras().Input(shape=spec.input_shape, name="clip")]

    def frames(self):
        return layer("FoldTime")(name="fold_time")(self.inputs[0])

    def frame_stack(self, x):
        """[t-1, t+1, t] (causal: [t-1, t]) stacked as channels, in one layer."""
        return layer("FrameStack")(frames=self.spec.frames, causal=self.spec.causal, name="frame_stack")(x)

    def shift(self, x, shift_div: int, name: str):
        s = self.spec
        return layer("TemporalShift")(frames=s.frames, shift_div=shift_div, causal=s.causal, name=name)(x)

    def temporal_conv(self, x, name: str):
        """Depthwise conv over time: frames become rows of an image, so it is a (k, 1)
        DEPTHWISE_CONV_2D; causal pads k-1 past frames (the streaming model's buffer), else k//2 each side."""
        K, k = keras(), self.spec.temporal_kernel
        h, w = x.shape[1], x.shape[2]
        y = layer("TimeToRows")(frames=self.spec.frames, name=f"{name}_rows")(x)
        before = k - 1 if self.spec.causal else k // 2
        y = K.layers.ZeroPadding2D(((before, k - 1 - before), (0, 0)), name=f"{name}_pad")(y)
        y = self._tbn(self._tconv(y, name), name)  # BN right after its conv: TFMOT folds the pair
        return layer("RowsToTime")(height=h, width=w, name=f"{name}_frames")(y)

    def pool(self, x, name: str = "temporal"):
        prefix = "" if name == "temporal" else f"{name}_"
        x = layer("UnfoldTime")(frames=self.spec.frames, name=f"{prefix}unfold_time")(x)
        return keras().layers.GlobalAveragePooling1D(name=f"{name}_pool")(x)

    def model(self, outputs, names):
        return keras().Model(self.inputs, outputs if len(outputs) > 1 else outputs[0], name=self.spec.name)


class StreamTime(_Time):
    """Streaming model: inputs `frame` (1, H, W, 3) + one `<name>_in` per state; outputs `logits`
    (the running clip prediction; also `exit_logits` with an early exit) + one `<name>_out` per
    state, fed back at the next frame."""

    def __init__(self, spec: VideoModelSpec):
        super().__init__(spec)
        self.states: list[StateSpec] = []
        self._state_in, self._state_out = [], []
        self.frame = keras().Input(shape=spec.input_shape[1:], batch_size=1, name="frame")

    def _state(self, name: str, shape, kind: str):
        spec = StateSpec(name, tuple(int(d) for d in shape), kind)
        self.states.append(spec)
        t = keras().Input(shape=spec.shape, batch_size=1, name=spec.input_name)
        self._state_in.append(t)
        return t

    def _out(self, name: str, tensor):
        # An identity layer fixes the output's name, which becomes the signature output name.
        self._state_out.append(keras().layers.Activation("linear", name=f"{name}_out")(tensor))

    def frames(self):
        return self.frame

    def frame_stack(self, x):
        """The clip model's FrameStack for one frame: k copies, the first C channels from the
        previous frame (the state). Only causal stacks stream."""
        copies = 2 if self.spec.causal else 3
        x = keras().layers.Concatenate(name="frame_copies")([x] * copies)
        return self.shift(x, copies, "frame_stack")

    def shift(self, x, shift_div: int, name: str):
        fold = shift_fold(x.shape[-1], shift_div)
        state = self._state(name, (*x.shape[1:3], fold), "shift")
        y, new_state = layer("StreamShift")(shift_div=shift_div, name=name)([x, state])
        self._out(name, new_state)
        return y

    def temporal_conv(self, x, name: str):
        """One frame of the causal temporal conv: the state buffers the previous k-1 frames."""
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        row = layer("TimeToRows")(frames=1, name=f"{name}_rows")(x)
        state = self._state(name, (self.spec.temporal_kernel - 1, h * w, c), "buffer")
        window, new_state = layer("StreamBuffer")(name=f"{name}_buffer")([row, state])
        self._out(name, new_state)
        y = self._tbn(self._tconv(window, name), name)
        return layer("RowsToTime")(height=h, width=w, name=f"{name}_frames")(y)

    def pool(self, x, name: str = "temporal"):
        frames = max(self.spec.frames, 2)
        window = self._state(f"{name}_window", (frames - 1, *x.shape[1:]), "window")
        count = self._state(f"{name}_count", (frames,), "count")  # the frame count in unary (see WindowMean)
        mean, new_window, new_count = layer("WindowMean")(frames=frames, name=f"{name}_pool")([x, window, count])
        self._out(f"{name}_window", new_window)
        self._out(f"{name}_count", new_count)
        return mean

    def model(self, outputs, names):
        return keras().Model([self.frame, *self._state_in], [*outputs, *self._state_out],
                             name=f"{self.spec.name}_stream")
