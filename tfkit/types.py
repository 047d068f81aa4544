"""Frozen dataclasses and str enums shared across tfkit. Imports no TensorFlow.

Example:
    >>> ClipSpec(frames=8, size=64).shape
    (8, 64, 64, 3)
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field


class ArtifactKind(str, enum.Enum):
    DATASET = "dataset"
    KERAS_MODEL = "keras_model"
    TFLITE_MODEL = "tflite_model"
    BENCHMARK = "benchmark"
    REPORT = "report"
    COVERAGE = "coverage"  # delegate coverage of a .tflite (the `check` step)


class Precision(str, enum.Enum):
    """Numeric form of a converted model (each is a registered converter variant)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"


class Normalization(str, enum.Enum):
    """How uint8 pixels become model input."""

    UNIT = "unit"  # [0, 1]
    SYMMETRIC = "symmetric"  # [-1, 1]

    def scale_offset(self) -> tuple[float, float]:
        """(scale, offset) such that x = pixel * scale + offset."""
        return {"unit": (1 / 255.0, 0.0), "symmetric": (2 / 255.0, -1.0)}[self.value]


@dataclass(frozen=True)
class ClipSpec:
    """How a video becomes one clip: T frames, every `stride`-th frame (or resampled to `fps`),
    short side resized then center-cropped to `size`, pixels normalized."""

    frames: int = 8
    size: int = 64
    stride: int = 2
    fps: float | None = None  # when set, overrides stride: frames are sampled at this rate
    normalization: Normalization = Normalization.SYMMETRIC

    def __post_init__(self):
        for name, ok, rule in (("frames", self.frames >= 1, ">= 1"), ("size", self.size >= 8, ">= 8"),
                               ("stride", self.stride >= 1, ">= 1")):
            if not ok:  # name the one field, not the whole spec's repr
                raise ValueError(f"clip {name} must be {rule}, got {getattr(self, name)!r}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        object.__setattr__(self, "normalization", Normalization(self.normalization))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.size, self.size, 3)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["normalization"] = self.normalization.value
        return d


@dataclass(frozen=True)
class LatencyStats:
    p50: float
    p90: float
    p99: float
    mean: float
    runs: int


@dataclass(frozen=True)
class BenchResult:
    """What the on-device runner measured for one artifact (all times in milliseconds).

    `device` is the address it ran on (`local`, `ssh:pi@board`), `device_name` its devices.yaml
    name (None for a bare address), `fingerprint` what the device is (`{"error": why}` when it
    could not be read). Energy is a real counter's reading or None, and `energy_source` says which
    counter or why there is none. `hygiene` holds governor, frequency, thermal and charging
    readings before and after; `throttled` is None when nothing could tell.

    In JSON (`to_dict`) the device is one object: `"device": {"address", "name", "fingerprint"}`;
    `from_dict` also reads the older form, a plain address string without the newer fields.

    Example:
        >>> BenchResult.from_dict(result.to_dict()) == result
        True
    """

    name: str
    precision: str
    size_bytes: int
    latency_ms: LatencyStats
    init_ms: float
    first_inference_ms: float
    peak_rss_mb: float
    threads: int
    runtime: str
    accuracy: float | None = None
    device: str = "local"
    extra: dict = field(default_factory=dict)
    delegate: str = "default"  # the delegate that actually ran ("default" = the runtime's own CPU path)
    energy_mj_per_inference: float | None = None
    energy_source: str = "unavailable: not recorded"
    device_name: str | None = None
    fingerprint: dict | None = None
    hygiene: dict = field(default_factory=dict)
    stream: dict | None = None
    throttled: bool | None = None
    throttle_reason: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["device"] = {"address": d["device"], "name": d.pop("device_name"), "fingerprint": d.pop("fingerprint")}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BenchResult:
        d = dict(d)
        device = d.get("device", "local")
        if isinstance(device, dict):  # the current form; a plain string is a results.json from before
            d.update(device=device["address"], device_name=device.get("name"), fingerprint=device.get("fingerprint"))
        return cls(**{**d, "latency_ms": LatencyStats(**d["latency_ms"])})
