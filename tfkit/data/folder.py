"""Folder-per-class video datasets (`root/<class>/<video>`, the UCF101 / Kinetics layout).

Each video gives one or more clips (`Windows`); the split is made over videos, so the clips of
one video are all in train or all in validation. Unreadable videos are skipped, each named once
(one line through `report`) and listed in `VideoDataset.skipped`; a class left with no readable
video, or an empty validation split, is a DataError.

Example:
    >>> ds = load_dataset("videos/", ClipSpec(frames=8, size=64), val_fraction=0.2, seed=0)
    >>> ds.classes, ds.train.x.shape
    (('jump', 'wave'), (40, 8, 64, 64, 3))
    >>> ds.val.save_npz("val.npz")
    PosixPath('val.npz')
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkit.atomic import atomic_path
from tfkit.data.clips import Windows, load_clips
from tfkit.errors import DataError, InputPathError, UsageError
from tfkit.progress import progress_bar
from tfkit.types import ClipSpec

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")

Item = tuple[Path, str]  # (video file, class name)


def _is_video(path: Path) -> bool:
    # Hidden files include half-written temp files (write_video's and others').
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in VIDEO_SUFFIXES


def scan(root: str | os.PathLike) -> list[Item]:
    """Every video under root/<class>/, as sorted (path, class_name) pairs.

    Classes are the subfolders holding at least one file with a suffix in VIDEO_SUFFIXES.

    Example:
        >>> scan("videos/")[:1]
        [(PosixPath('videos/jump/a.mp4'), 'jump')]
    """
    root = Path(root)
    if not root.exists():
        raise InputPathError(f"Dataset folder {str(root)!r} does not exist; check the path.")
    if not root.is_dir():
        raise InputPathError(f"{str(root)!r} is a file; give the dataset folder root/<class>/<video>.")
    items = [
        (video, folder.name)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
        for video in sorted(folder.iterdir())
        if _is_video(video)
    ]
    if not items:
        raise DataError(
            f"empty dataset folder {root}: no class subfolder holds a video; expected "
            f"root/<class>/<video>.mp4 (suffixes {', '.join(VIDEO_SUFFIXES)})."
        )
    return items


@dataclass(frozen=True)
class Split:
    """A stratified train/validation split of (path, class_name) items."""

    train: tuple[Item, ...]
    val: tuple[Item, ...]


def split(items: Iterable[Item], val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Stratified split: round(n * val_fraction) of each class to val, but >= 1 stays in train
    and, when val_fraction > 0, a class of 2 or more gives >= 1 to val (each class is validated).

    Deterministic for a seed (each class is shuffled by its own generator, so adding a class
    does not reshuffle the others); both halves come back sorted.

    Example:
        >>> s = split(scan("videos/"), val_fraction=0.25, seed=0)
        >>> len(s.train), len(s.val)
        (30, 10)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_class: dict[str, list[Item]] = {}
    for path, name in items:
        by_class.setdefault(name, []).append((Path(path), name))
    train: list[Item] = []
    val: list[Item] = []
    for name in sorted(by_class):
        members = sorted(by_class[name])
        n_val = math.floor(len(members) * val_fraction + 0.5)
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), len(members) - 1)
        rng = np.random.default_rng([seed, *name.encode()])
        order = rng.permutation(len(members))
        val.extend(members[i] for i in order[:n_val])
        train.extend(members[i] for i in order[n_val:])
    return Split(tuple(sorted(train)), tuple(sorted(val)))


@dataclass(frozen=True, eq=False)
class ClipSet:
    """Clips ready for a model: x uint8 (N, T, S, S, 3), y int64 (N,), and where each came from.

    Example:
        >>> ClipSet.load_npz("val.npz").x.shape
        (10, 8, 64, 64, 3)
    """

    x: np.ndarray
    y: np.ndarray
    files: tuple[str, ...]
    classes: tuple[str, ...] = ()
    clip: ClipSpec | None = None

    def __post_init__(self):
        if self.x.dtype != np.uint8 or self.x.ndim != 5 or self.x.shape[-1] != 3:
            raise DataError(f"ClipSet.x must be uint8 (N, T, S, S, 3), got {self.x.dtype} {self.x.shape}")
        if self.y.dtype != np.int64 or self.y.shape != (len(self.x),) or len(self.files) != len(self.x):
            raise DataError(
                f"ClipSet needs one int64 label and one file per clip: x has {len(self.x)}, "
                f"y is {self.y.dtype} {self.y.shape}, files has {len(self.files)}"
            )

    def __len__(self) -> int:
        return len(self.x)

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write x, y, files, classes (and the clip spec as JSON) atomically to an .npz file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "x": self.x,
            "y": self.y,
            "files": np.array(self.files, dtype=str),
            "classes": np.array(self.classes, dtype=str),
            "clip_spec": np.array(json.dumps(self.clip.to_dict() if self.clip else None)),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no ".npz"
            np.savez(f, **arrays)
        return path

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> ClipSet:
        """Read a ClipSet written by save_npz (or any npz with uint8 `x` and integer `y`)."""
        path = Path(path)
        if not path.is_file():
            raise InputPathError(f"Clip file {str(path)!r} does not exist; check the path.")
        try:
            with np.load(path, allow_pickle=False) as data:
                x, y = data["x"], data["y"].astype(np.int64)
                files = tuple(str(f) for f in data["files"]) if "files" in data else ()
                classes = tuple(str(c) for c in data["classes"]) if "classes" in data else ()
                spec = json.loads(str(data["clip_spec"])) if "clip_spec" in data else None
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"{path}: not a clip file with arrays x and y ({exc}); rebuild it with ClipSet.save_npz."
            ) from exc
        files = files or tuple("" for _ in range(len(x)))
        return cls(x, y, files, classes, ClipSpec(**spec) if spec else None)


@dataclass(frozen=True)
class ClassCount:
    """Clips and videos of one class in each split."""

    name: str
    train_clips: int
    train_videos: int
    val_clips: int
    val_videos: int


@dataclass(frozen=True, eq=False)
class VideoDataset:
    """A folder dataset cut into clips: the classes, a train and a val ClipSet, skipped files."""

    classes: tuple[str, ...]
    train: ClipSet
    val: ClipSet
    skipped: tuple[tuple[str, str], ...]  # (path, reason)

    def counts(self) -> tuple[ClassCount, ...]:
        """Clips and videos per class and split (the clips of one video share its file name)."""
        def per_class(part: ClipSet, index: int) -> tuple[int, int]:
            mask = part.y == index
            return int(mask.sum()), len({f for f, m in zip(part.files, mask) if m})

        return tuple(ClassCount(name, *per_class(self.train, i), *per_class(self.val, i))
                     for i, name in enumerate(self.classes))


def counts_table(counts: Sequence[ClassCount]) -> list[str]:
    """Clips (videos) per class and split as aligned text lines, with a total row.

    Example:
        >>> print("\\n".join(counts_table(ds.counts())))  # doctest: +SKIP
        class  train clips (videos)  val clips (videos)
        jump               16 (4)              4 (1)
    """
    rows = [(c.name, f"{c.train_clips} ({c.train_videos})", f"{c.val_clips} ({c.val_videos})") for c in counts]
    total = [sum(getattr(c, f) for c in counts) for f in ("train_clips", "train_videos", "val_clips", "val_videos")]
    rows.append(("total", f"{total[0]} ({total[1]})", f"{total[2]} ({total[3]})"))
    header = ("class", "train clips (videos)", "val clips (videos)")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}" for r in [header, *rows]]


def _clip_set(items: Sequence[Item], clips: dict[Path, np.ndarray], classes: tuple[str, ...],
              clip: ClipSpec, root: Path) -> ClipSet:
    """The clips of `items`; `files` names each clip's video relative to the dataset root, so the
    same videos give the same bytes wherever the folder lies (a step's staging folder is random)."""
    if not items:
        return ClipSet(np.zeros((0, *clip.shape), np.uint8), np.zeros(0, np.int64), (), classes, clip)
    x = np.concatenate([clips[p] for p, _ in items])
    y = np.concatenate([np.full(len(clips[p]), classes.index(name), np.int64) for p, name in items])
    files = tuple(Path(p).relative_to(root).as_posix() for p, _ in items for _ in range(len(clips[p])))
    return ClipSet(x, y, files, classes, clip)


def _check_classes(root, classes: tuple[str, ...], clips: dict[Path, np.ndarray], items: Sequence[Item],
                   skipped: Sequence[tuple[str, str]]) -> None:
    """Every class needs a readable video: a class of broken files would silently train on nothing."""
    if not clips:
        raise DataError(f"no readable video in {root} ({len(skipped)} tried); the first: {skipped[0][1]}")
    empty = [name for name in classes if not any(p in clips for p, c in items if c == name)]
    if empty:
        first = next(reason for path, reason in skipped if Path(path).parent.name == empty[0]).split("; ")[0]
        raise DataError(
            f"class {', '.join(repr(n) for n in empty)} in {root} has no readable video (the first: {first}); "
            f"replace or re-encode its files, or remove the class folder."
        )


def _check_val(root, counts: Sequence[ClassCount], val_fraction: float, report: Callable[[str], None]) -> None:
    if val_fraction <= 0:
        return
    if not any(c.val_clips for c in counts):
        raise DataError(
            f"the validation split of {root} is empty: every class has a single readable video, and the "
            f"split is by video (clips of one video never straddle train and validation); add a second "
            f"video to each class."
        )
    lone = [c.name for c in counts if not c.val_clips]
    if lone:
        report(f"warning: class {', '.join(lone)} has a single readable video, so no validation clip; "
               f"its validation accuracy is not measured (add a second video to validate it)")


def load_dataset(root: str | os.PathLike, clip: ClipSpec, *, val_fraction: float = 0.2,
                 seed: int = 0, progress: bool = True, windows: Windows | None = None,
                 report: Callable[[str], None] | None = None) -> VideoDataset:
    """Scan root/<class>/<video>, cut clips from each video (`windows`: one centred clip by
    default), split the videos stratified by class, and gather each split's clips.

    Unreadable videos are skipped: each is named once through `report` (default: this module's
    logger) and listed in `skipped`. Raises DataError when a class has no readable video, or
    when val_fraction > 0 and the validation split came out empty.

    Example:
        >>> ds = load_dataset("videos/", ClipSpec(frames=8, size=64), windows=Windows(per_video=4),
        ...                   progress=False)
        >>> ds.train.y.dtype, ds.skipped
        (dtype('int64'), ())
    """
    report = report or log.warning
    windows = windows or Windows()
    items = scan(root)
    classes = tuple(sorted({name for _, name in items}))
    clips: dict[Path, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    with progress_bar(f"clips from {Path(root).name}", len(items), enabled=progress) as advance:
        for path, _ in items:
            try:
                clips[path] = load_clips(path, clip, windows)
            except DataError as exc:
                skipped.append((str(path), str(exc)))
                report(f"skipped: {exc}")  # the message names the file
            advance()
    _check_classes(root, classes, clips, items, skipped)
    readable = [(path, name) for path, name in items if path in clips]
    halves = split(readable, val_fraction=val_fraction, seed=seed)  # by video: its clips go where it goes
    dataset = VideoDataset(
        classes=classes,
        train=_clip_set(halves.train, clips, classes, clip, Path(root)),
        val=_clip_set(halves.val, clips, classes, clip, Path(root)),
        skipped=tuple(skipped),
    )
    _check_val(root, dataset.counts(), val_fraction, report)
    return dataset
