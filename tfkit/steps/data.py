"""`data` step: videos (the built-in generated set or a user folder) -> uint8 clip sets.

Example:
    >>> run_step(DataStep(DataConfig(source="builtin")), [], Path("out/01-data"))  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tfkit.data.clips import WindowMode, Windows
from tfkit.errors import UsageError
from tfkit.steps.base import STEPS, RunContext, Step, StepOutput
from tfkit.types import ArtifactKind, ClipSpec

BUILTIN = "builtin"


@dataclass(frozen=True)
class DataConfig:
    source: str = BUILTIN  # "builtin" (generated motion set) or a folder root/<class>/<video>
    frames: int = 8
    size: int = 32
    stride: int = 2
    fps: float | None = None
    normalization: str = "symmetric"
    val_fraction: float = 0.2
    seed: int = 0
    # Clips per video: up to `clips_per_video` (0 = as many as fit) in non-overlapping `uniform`
    # windows, or `sliding` windows every `window_stride` source frames (0 = back to back). A video
    # too short for more gives fewer: the built-in set's 24-frame videos give one clip each.
    clips_per_video: int = 4
    windows: WindowMode = WindowMode.UNIFORM
    window_stride: int = 0
    # Only for the built-in set:
    videos_per_class: int = 60
    video_frames: int = 24
    video_size: int = 80

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise UsageError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.videos_per_class < 2:
            raise UsageError(f"videos_per_class must be >= 2, got {self.videos_per_class}")
        self.clip  # validates the clip fields
        object.__setattr__(self, "windows", self.clip_windows.mode)  # validated, a WindowMode from here on

    @property
    def clip_windows(self) -> Windows:
        return Windows(self.windows, self.clips_per_video, self.window_stride)

    @property
    def clip(self) -> ClipSpec:
        try:
            return ClipSpec(frames=self.frames, size=self.size, stride=self.stride, fps=self.fps,
                            normalization=self.normalization)
        except ValueError as e:
            raise UsageError(str(e)) from e

    def to_dict(self) -> dict:
        d = asdict(self)
        d["windows"] = self.windows.value
        if self.source != BUILTIN:
            d["source"] = str(Path(self.source).resolve())
        return d


def folder_fingerprint(root: Path) -> str:
    """Cheap identity of a user's video folder: relative paths, sizes and mtimes (not contents)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def declared_symmetries(root: Path) -> dict:
    """Label maps of clip transforms that the dataset's own `dataset.json` declares, e.g.
    {"hflip": {"left": "right", "right": "left"}} (a transform with an empty map keeps every label).
    A user folder without dataset.json declares none, and training then does not flip its clips."""
    meta = Path(root) / "dataset.json"
    if not meta.is_file():
        return {}
    try:
        symmetries = json.loads(meta.read_text()).get("symmetries", {})
    except (ValueError, AttributeError) as e:
        raise UsageError(f"{meta} is not valid JSON with an optional 'symmetries' object: {e}") from e
    if not isinstance(symmetries, dict) or not all(isinstance(m, dict) for m in symmetries.values()):
        raise UsageError(f"{meta}: 'symmetries' must map a transform name to a {{class: class}} object")
    return symmetries


@STEPS.register("data")
class DataStep(Step):
    """Decode videos (built-in generated set or a user folder) into uint8 train/val clip sets. No inputs."""

    name = "data"

    def extra_fingerprint(self) -> dict:
        if self.config.source == BUILTIN:
            return {}
        return {"folder": folder_fingerprint(Path(self.config.source))}

    def run(self, inputs, workdir: Path, ctx: RunContext) -> StepOutput:
        from tfkit.data import counts_table, generate_motion_dataset, load_dataset

        c: DataConfig = self.config
        files = {"train": "train.npz", "val": "val.npz"}
        if c.source == BUILTIN:
            root = generate_motion_dataset(workdir / "videos", videos_per_class=c.videos_per_class,
                                           frames=c.video_frames, size=c.video_size, seed=c.seed,
                                           progress=ctx.progress)
            files["videos"] = "videos/dataset.json"
        else:
            root = Path(c.source)
        # Skipped files and a class without validation clips are reported once each, through ctx.log.
        ds = load_dataset(root, c.clip, val_fraction=c.val_fraction, seed=c.seed, progress=ctx.progress,
                          windows=c.clip_windows, report=lambda line: ctx.log(f"[data] {line}"))
        counts = ds.counts()
        for line in counts_table(counts):
            ctx.log(f"[data] {line}")
        ds.train.save_npz(workdir / files["train"])
        ds.val.save_npz(workdir / files["val"])
        spec = {"classes": list(ds.classes), "clip": c.clip.to_dict(), "source": str(c.source),
                "symmetries": declared_symmetries(root)}
        (workdir / "classes.json").write_text(json.dumps(list(ds.classes)))
        files["classes"] = "classes.json"
        metrics = {"train_clips": len(ds.train.y), "val_clips": len(ds.val.y), "classes": len(ds.classes),
                   "train_videos": sum(n.train_videos for n in counts),
                   "val_videos": sum(n.val_videos for n in counts),
                   "per_class": {n.name: {"train_clips": n.train_clips, "train_videos": n.train_videos,
                                          "val_clips": n.val_clips, "val_videos": n.val_videos} for n in counts},
                   "skipped": [{"path": str(p), "reason": r} for p, r in ds.skipped]}
        return StepOutput(ArtifactKind.DATASET, files, spec, metrics)
