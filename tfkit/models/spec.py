"""VideoModelSpec: everything needed to rebuild a zoo model, as data. Imports no TensorFlow.

Example:
    >>> VideoModelSpec(family="tsm_mobilenet_v2", num_classes=7).input_shape
    (8, 64, 64, 3)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from tfkit.errors import UsageError


@dataclass(frozen=True)
class VideoModelSpec:
    family: str = "tsm_mobilenet_v2"
    num_classes: int = 7
    frames: int = 8
    size: int = 64
    alpha: float = 0.35  # width multiplier
    depth: float = 1.0  # depth multiplier: repeats per stage are scaled by it (at least one block)
    shift_div: int = 8  # TSM: 1/shift_div of channels shifted each way in time
    stem_shift: bool = True  # also shift right after the stem, where motion is still >= 1 px
    stages: int = 7  # how many MobileNetV2 stages to keep (small inputs do not need the deep ones)
    head_channels: int = 0  # final 1x1 conv width; 0 = MobileNetV2's 1280 * max(1, alpha)
    frame_stack: bool = False  # stem sees frames t-1, t, t+1 stacked as 9 channels (early fusion)
    causal: bool = False  # shifts look only at past frames, so the model also runs frame by frame
    dropout: float = 0.2

    def __post_init__(self):
        checks = {
            "num_classes": self.num_classes >= 2,
            "frames": self.frames >= 1,
            "size": self.size >= 32 and self.size % 8 == 0,
            "alpha": 0.0 < self.alpha <= 2.0,
            "depth": 0.0 < self.depth <= 2.0,
            "stages": 1 <= self.stages <= 7,
            "head_channels": self.head_channels >= 0,
            "shift_div": self.shift_div >= 2,
            "dropout": 0.0 <= self.dropout < 1.0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            raise UsageError(
                f"invalid model spec: {name}={getattr(self, name)!r} "
                "(num_classes>=2, frames>=1, size>=32 and a multiple of 8, 0<alpha<=2, 0<depth<=2, "
                "shift_div>=2, 0<=dropout<1)"
            )

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.size, self.size, 3)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown model spec field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)
