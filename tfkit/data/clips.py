"""Frames to model clips: where the windows sit, pick T frames, resize + center-crop, normalize.

Clips stay uint8 until the model needs them (`normalize`), so datasets store compactly. Videos
are decoded by streaming (tfkit.data.decode): only the frames the clips use, each shrunk to the
clip size as it leaves the decoder, so a long 1080p video costs no more memory than a short one.

Example:
    >>> clip = load_clip("jump.mp4", ClipSpec(frames=8, size=64))
    >>> clip.shape, clip.dtype
    ((8, 64, 64, 3), dtype('uint8'))
    >>> load_clips("walk.mp4", ClipSpec(frames=8, size=64), Windows(per_video=4)).shape
    (4, 8, 64, 64, 3)
    >>> normalize(clip, Normalization.SYMMETRIC).min() >= -1.0
    True
"""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tfkit.data.decode import read_frames_at
from tfkit.data.video import VideoInfo, probe
from tfkit.errors import DataError, UsageError
from tfkit.types import ClipSpec, Normalization

Start = int | Literal["center"]

# Sampling positions are floats when resampling by fps; this keeps 3 * (1/3) on frame 1, not 0.
_EPS = 1e-6


def _source_step(src_fps: float, clip: ClipSpec) -> float:
    """How many source frames lie between two sampled frames."""
    if clip.fps is None:
        return float(clip.stride)
    if not src_fps > 0:
        raise ValueError(f"resampling to {clip.fps} fps needs the source fps, got {src_fps}")
    return src_fps / clip.fps


def sample_indices(n_frames: int, src_fps: float, clip: ClipSpec, *, start: Start = 0) -> np.ndarray:
    """Indices of the T source frames that make one clip.

    Every `clip.stride`-th frame, or, when `clip.fps` is set, the frame on screen at each tick
    of the target rate (index = floor(t * src_fps / clip.fps)). `start` is the first index or
    "center" (the window sits in the middle of the video). A video too short for the window is
    padded by repeating its last frame (not looped: a loop would jump back in time).

    Example:
        >>> sample_indices(30, 30.0, ClipSpec(frames=4, stride=2))
        array([0, 2, 4, 6])
        >>> sample_indices(30, 30.0, ClipSpec(frames=4, fps=10))
        array([0, 3, 6, 9])
        >>> sample_indices(5, 30.0, ClipSpec(frames=4, stride=2))
        array([0, 2, 4, 4])
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got n_frames={n_frames}")
    step = _source_step(src_fps, clip)
    offsets = np.floor(np.arange(clip.frames) * step + _EPS).astype(np.int64)
    if isinstance(start, str):
        if start != "center":
            raise ValueError(f"start must be an int or 'center', got {start!r}")
        span = int(offsets[-1]) + 1
        first = max(0, (n_frames - span) // 2)
    else:
        if not 0 <= start < n_frames:
            raise ValueError(f"start={start} is outside a video of {n_frames} frames")
        first = int(start)
    return np.minimum(first + offsets, n_frames - 1)


def _check_frames(frames: np.ndarray) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")


def _box_shrink(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks (area resampling), trimming the remainder evenly."""
    n, h, w, c = frames.shape
    top, left = (h % factor) // 2, (w % factor) // 2
    hh, ww = h // factor, w // factor
    core = frames[:, top : top + hh * factor, left : left + ww * factor]
    blocks = core.reshape(n, hh, factor, ww, factor, c).astype(np.float32)
    return blocks.mean(axis=(2, 4))


def _bilinear_taps(in_len: int, scale: float, out_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps and weights for `out_len` pixels centred in an axis resized by `scale`.

    Half-pixel centres (align_corners=False), as in TF, OpenCV and PIL; only the cropped
    window is ever computed, so the full resized frame never exists.
    """
    resized_len = max(out_len, round(in_len * scale))
    crop_offset = (resized_len - out_len) // 2
    centres = (np.arange(out_len) + crop_offset + 0.5) / scale - 0.5
    centres = np.clip(centres, 0.0, in_len - 1)
    lower = np.floor(centres).astype(np.int64)
    upper = np.minimum(lower + 1, in_len - 1)
    return lower, upper, (centres - lower).astype(np.float32)


def resize_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to `size`, then center-crop to size x size; uint8 in and out.

    Accepts (N, H, W, 3) or one (H, W, 3) frame. Shrinking by 2x or more first averages whole
    pixel blocks (area), so fine textures alias less; the rest is bilinear.

    Example:
        >>> resize_crop(np.zeros((2, 120, 160, 3), np.uint8), 64).shape
        (2, 64, 64, 3)
    """
    frames = np.asarray(frames)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    _check_frames(batch)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    _, h, w, _ = batch.shape
    short = min(h, w)
    if short == size:  # nothing to resample: an exact crop keeps pixels bit for bit
        top, left = (h - size) // 2, (w - size) // 2
        out = batch[:, top : top + size, left : left + size].copy()
        return out[0] if single else out
    factor = short // size
    source = _box_shrink(batch, factor) if factor >= 2 else batch.astype(np.float32)
    sh, sw = source.shape[1:3]
    scale = size / min(sh, sw)
    y0, y1, wy = _bilinear_taps(sh, scale, size)
    x0, x1, wx = _bilinear_taps(sw, scale, size)
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    rows = source[:, y0] * (1 - wy) + source[:, y1] * wy
    out = rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out[0] if single else out


def normalize(frames_uint8: np.ndarray, normalization: Normalization | str) -> np.ndarray:
    """uint8 pixels to float32 model input: x = pixel * scale + offset.

    Example:
        >>> normalize(np.array([0, 255], np.uint8), "symmetric")
        array([-1.,  1.], dtype=float32)
    """
    frames_uint8 = np.asarray(frames_uint8)
    if frames_uint8.dtype != np.uint8:
        raise ValueError(f"normalize expects uint8 pixels, got {frames_uint8.dtype}")
    scale, offset = Normalization(normalization).scale_offset()
    return frames_uint8.astype(np.float32) * np.float32(scale) + np.float32(offset)


class WindowMode(str, enum.Enum):
    """Where a video's clips sit in time."""

    UNIFORM = "uniform"  # the video cut into equal parts, one window centred in each
    SLIDING = "sliding"  # a window every `stride` source frames from the start


@dataclass(frozen=True)
class Windows:
    """How many clips one video gives, and where.

    `per_video` caps the clips of one video (0 = as many as fit). Uniform windows never overlap,
    so a video shorter than `per_video` clip spans gives fewer (at least one, centred, as before).
    Sliding windows start every `stride` source frames (0 = one clip span: back to back); when
    more fit than `per_video`, evenly spaced ones are kept. Nothing here is random.

    Example:
        >>> window_starts(900, 30.0, ClipSpec(frames=8, stride=2), Windows(per_video=4)).tolist()
        [105, 330, 555, 780]
    """

    mode: WindowMode = WindowMode.UNIFORM
    per_video: int = 1
    stride: int = 0

    def __post_init__(self):
        try:
            object.__setattr__(self, "mode", WindowMode(self.mode))
        except ValueError as exc:
            raise UsageError(f"windows must be one of {', '.join(m.value for m in WindowMode)}, "
                             f"got {self.mode!r}") from exc
        if self.per_video < 0 or self.stride < 0:
            raise UsageError(f"clips per video and window stride must be >= 0 (0 = automatic), got "
                             f"{self.per_video} and {self.stride}")


def clip_span(src_fps: float, clip: ClipSpec) -> int:
    """Source frames one clip covers, first to last sampled frame inclusive."""
    return int(np.floor((clip.frames - 1) * _source_step(src_fps, clip) + _EPS)) + 1


def window_starts(n_frames: int, src_fps: float, clip: ClipSpec, windows: Windows) -> np.ndarray:
    """First source frame of each clip window in a video of `n_frames` frames (sorted, >= 1 window).

    Example:
        >>> window_starts(30, 30.0, ClipSpec(frames=4, stride=2), Windows(WindowMode.SLIDING, 0, 5)).tolist()
        [0, 5, 10, 15, 20]
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got n_frames={n_frames}")
    span = clip_span(src_fps, clip)
    if n_frames <= span:  # too short for one full window: one, padded by sample_indices
        return np.zeros(1, np.int64)
    if windows.mode is WindowMode.UNIFORM:
        fit = n_frames // span
        count = fit if windows.per_video == 0 else min(windows.per_video, fit)
        part = n_frames / count  # >= span, so centred windows never overlap
        return np.floor(np.arange(count) * part + (part - span) / 2 + _EPS).astype(np.int64)
    starts = np.arange(0, n_frames - span + 1, windows.stride or span, dtype=np.int64)
    if 0 < windows.per_video < len(starts):
        starts = starts[np.round(np.linspace(0, len(starts) - 1, windows.per_video)).astype(np.int64)]
    return starts


def _preshrink(size: int) -> int:
    """Short side swscale shrinks a frame to before resize_crop: big frames become small at once,
    and resize_crop's area + bilinear step still has 2x the pixels it keeps (up to 4x on big ones)."""
    return 4 * size


def _probe_for(path: str | os.PathLike, clip: ClipSpec) -> VideoInfo:
    """Frame count (estimated where the container keeps none: no decoding pass) and fps."""
    info = probe(path, count=False)
    if clip.fps is not None and not info.fps > 0:
        raise DataError(f"{info.path}: the file has no frame rate to resample to {clip.fps} fps; "
                        f"sample by --stride instead.")
    return info


def _read_clip_frames(path: str | os.PathLike, clip: ClipSpec, indices: np.ndarray) -> np.ndarray:
    """The frames at `indices`, each shrunk and cropped to the clip size as it is decoded."""
    return read_frames_at(path, indices.ravel(), short_side=_preshrink(clip.size),
                          transform=lambda rgb: resize_crop(rgb, clip.size))


def load_clips(path: str | os.PathLike, clip: ClipSpec, windows: Windows | None = None) -> np.ndarray:
    """Decode only the frames `windows` needs and cut them into uint8 (K, T, size, size, 3) clips.

    Memory is bounded by the clips (K x T frames at clip size, plus the one frame being decoded),
    never by the video's length or resolution.

    Example:
        >>> load_clips("walk.mp4", ClipSpec(frames=8, size=32), Windows(per_video=3)).shape
        (3, 8, 32, 32, 3)
    """
    info = _probe_for(path, clip)
    starts = window_starts(info.frames, info.fps, clip, windows or Windows())
    indices = np.stack([sample_indices(info.frames, info.fps, clip, start=int(s)) for s in starts])
    frames = _read_clip_frames(path, clip, indices)
    return frames.reshape(*indices.shape, *frames.shape[1:])


def load_clip(path: str | os.PathLike, clip: ClipSpec, *, start: Start = "center") -> np.ndarray:
    """Decode (by streaming) one uint8 (T, size, size, 3) clip from a video (no normalization).

    The window is centred by default, the usual choice for evaluation clips.

    Example:
        >>> load_clip("jump.mp4", ClipSpec(frames=8, size=64, stride=2)).shape
        (8, 64, 64, 3)
    """
    info = _probe_for(path, clip)
    return _read_clip_frames(path, clip, sample_indices(info.frames, info.fps, clip, start=start))
