"""VideoModelSpec: everything needed to rebuild a zoo model, as data. Imports no TensorFlow.

Example:
    >>> VideoModelSpec(family="mobilenet_v2", num_classes=7).input_shape
    (8, 64, 64, 3)
    >>> VideoModelSpec(family="efficientnet_lite", compound=1).input_shape  # EfficientNet-B1-style
    (8, 72, 72, 3)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from tfkit.errors import UsageError

# EfficientNet's compound scaling (Tan & Le, 2019): depth alpha^phi, width beta^phi, resolution gamma^phi
# with alpha * beta^2 * gamma^2 ~= 2, so each step of phi about doubles the FLOPs.
COMPOUND_DEPTH, COMPOUND_WIDTH, COMPOUND_RESOLUTION = 1.2, 1.1, 1.15
TEMPORAL_MODULES = ("tsm", "2plus1d")


@dataclass(frozen=True)
class VideoModelSpec:
    family: str = "mobilenet_v2"  # frame backbone: mobilenet_v2 | mobilenet_v3 | efficientnet_lite
    num_classes: int = 7
    frames: int = 8
    size: int = 64  # resolution (before compound scaling)
    alpha: float = 0.35  # width multiplier
    depth: float = 1.0  # depth multiplier: repeats per stage are scaled by it (at least one block)
    compound: float = 0.0  # EfficientNet compound coefficient phi: scales depth, width and resolution
    temporal: str = "tsm"  # tsm (temporal shift, no MACs) | 2plus1d (causal-able depthwise temporal conv)
    temporal_kernel: int = 3  # frames seen by each (2+1)D temporal convolution
    early_exit: int = 0  # >0: a cheap classifier after this many stages, output "exit_logits"
    shift_div: int = 8  # TSM: 1/shift_div of channels shifted each way in time
    stem_shift: bool = True  # also shift right after the stem, where motion is still >= 1 px
    stages: int = 7  # how many MobileNetV2 stages to keep (small inputs do not need the deep ones)
    head_channels: int = 0  # final 1x1 conv width; 0 = MobileNetV2's 1280 * max(1, alpha)
    frame_stack: bool = False  # stem sees frames t-1, t, t+1 stacked as 9 channels (early fusion)
    causal: bool = False  # shifts look only at past frames, so the model also runs frame by frame
    dropout: float = 0.2
    seed: int = 0  # the initial weights: `build` seeds every initializer from it

    def __post_init__(self):
        checks = {  # field -> (holds, the rule in words): a bad value names its field and rule only
            "num_classes": (self.num_classes >= 2, ">= 2"),
            "frames": (self.frames >= 1, ">= 1"),
            "size": (self.size >= 32 and self.size % 4 == 0, ">= 32 and a multiple of 4"),
            "alpha": (0.0 < self.alpha <= 2.0, "in (0, 2]"),
            "depth": (0.0 < self.depth <= 2.0, "in (0, 2]"),
            "stages": (1 <= self.stages <= 7, "in [1, 7]"),
            "compound": (0.0 <= self.compound <= 7.0, "in [0, 7]"),
            "temporal": (self.temporal in TEMPORAL_MODULES, f"one of {', '.join(TEMPORAL_MODULES)}"),
            "temporal_kernel": (self.temporal_kernel >= 2, ">= 2"),
            "early_exit": (0 <= self.early_exit < self.stages, f">= 0 and below stages ({self.stages})"),
            "head_channels": (self.head_channels >= 0, ">= 0"),
            "shift_div": (self.shift_div >= 2, ">= 2"),
            "dropout": (0.0 <= self.dropout < 1.0, "in [0, 1)"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise UsageError(f"model spec {name} must be {rule}, got {getattr(self, name)!r}")

    @property
    def width_multiplier(self) -> float:
        return self.alpha * COMPOUND_WIDTH ** self.compound

    @property
    def depth_multiplier(self) -> float:
        return self.depth * COMPOUND_DEPTH ** self.compound

    @property
    def resolution(self) -> int:
        """Input height and width: `size`, or with a compound coefficient `size` scaled and
        rounded to a multiple of 8."""
        if not self.compound:
            return self.size
        return max(32, round(self.size * COMPOUND_RESOLUTION ** self.compound / 8) * 8)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.resolution, self.resolution, 3)

    @property
    def name(self) -> str:
        """The zoo name: temporal module + backbone, e.g. tsm_mobilenet_v2, 2plus1d_efficientnet_lite."""
        return f"{self.temporal}_{self.family}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown model spec field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)
