"""How a zoo model handles time, as one object the family builder calls: `ClipTime` builds the
clip model (T frames folded into the batch axis), `StreamTime` the streaming model (one frame in,
explicit state tensors in and out). Both create identically named weight layers, so the streaming
model takes the clip model's weights as they are.

Example:
    >>> clip = build(spec); stream = to_streaming(clip, spec)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

from tfkit._compat.keras import keras
from tfkit.models.layers import layer, shift_fold
from tfkit.models.spec import VideoModelSpec


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a streaming model: its input/output names and shape (batch 1)."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "shift" (previous frame's channels), "window" or "count" (sliding temporal mean)

    @property
    def input_name(self) -> str:
        return f"{self.name}_in"

    @property
    def output_name(self) -> str:
        return f"{self.name}_out"

    def to_dict(self) -> dict:
        return {"name": self.name, "input": self.input_name, "output": self.output_name,
                "shape": list(self.shape), "kind": self.kind}


class ClipTime:
    """Clip model: input (B, T, H, W, 3), frames folded into the batch axis."""

    def __init__(self, spec: VideoModelSpec):
        self.spec = spec
        self.inputs = [keras().Input(shape=spec.input_shape, name="clip")]

    def frames(self):
        return layer("FoldTime")(name="fold_time")(self.inputs[0])

    def shift(self, x, shift_div: int, name: str):
        s = self.spec
        return layer("TemporalShift")(frames=s.frames, shift_div=shift_div, causal=s.causal, name=name)(x)

    def pool(self, x):
        x = layer("UnfoldTime")(frames=self.spec.frames, name="unfold_time")(x)
        return keras().layers.GlobalAveragePooling1D(name="temporal_pool")(x)

    def model(self, logits):
        return keras().Model(self.inputs, logits, name=self.spec.family)


class StreamTime:
    """Streaming model: inputs `frame` (1, H, W, 3) + one `<name>_in` per state; outputs `logits`
    (the running clip prediction) + one `<name>_out` per state, fed back at the next frame."""

    def __init__(self, spec: VideoModelSpec):
        self.spec = spec
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

    def shift(self, x, shift_div: int, name: str):
        fold = shift_fold(x.shape[-1], shift_div)
        state = self._state(name, (*x.shape[1:3], fold), "shift")
        y, new_state = layer("StreamShift")(shift_div=shift_div, name=name)([x, state])
        self._out(name, new_state)
        return y

    def pool(self, x):
        frames = max(self.spec.frames, 2)
        window = self._state("temporal_window", (frames - 1, *x.shape[1:]), "window")
        count = self._state("temporal_count", (1,), "count")
        mean, new_window, new_count = layer("WindowMean")(frames=frames, name="temporal_pool")([x, window, count])
        self._out("temporal_window", new_window)
        self._out("temporal_count", new_count)
        return mean

    def model(self, logits):
        return keras().Model([self.frame, *self._state_in], [logits, *self._state_out],
                             name=f"{self.spec.family}_stream")
