"""Real footage for self-supervised video generation: frame triplets for interpolation and
(low-res, high-res) pairs for super-resolution, cut from decoded videos. Numpy and PyAV only.

A `Footage` is a time range of one video, area-downscaled by an integer factor, as float32 in
[0, 1]. Training and evaluation take different files or disjoint time ranges; `describe()` says
which, for the benchmark record.

Example:
    >>> clip = load_footage("cockatoo.mp4", downscale=4, stop=200)  # doctest: +SKIP
    >>> a, b, mid = triplets(clip.frames)  # f[t-1], f[t+1] -> f[t]
    >>> lr, hr = sr_pairs(clip.frames, scale=2)
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkit.errors import DataError, UsageError

# Real videos that ship with Debian's python3-imageio (its test resources).
IMAGEIO_RESOURCES = Path("/usr/lib/python3/dist-packages/imageio/resources/images")


@dataclass(frozen=True, eq=False)
class Footage:
    """Frames [start, stop) of `path`, area-downscaled by `downscale`: float32 (N, H, W, 3) in [0, 1]."""

    path: Path
    frames: np.ndarray
    start: int
    stop: int
    downscale: int

    def describe(self) -> dict:
        n, h, w, _ = self.frames.shape
        return {"file": self.path.name, "frames": [self.start, self.stop], "count": int(n),
                "downscale": self.downscale, "size_hw": [int(h), int(w)]}


def area_downscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downscale of (..., H, W, C) by an integer factor (OpenCV's INTER_AREA for integer
    factors); H and W are first cropped to multiples of `factor`. Returns float32.

    Example:
        >>> area_downscale(np.arange(16.0).reshape(1, 4, 4, 1), 2)[0, :, :, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]], dtype=float32)
    """
    factor = int(factor)
    if factor < 1:
        raise UsageError(f"downscale factor must be a positive integer, got {factor}")
    x = np.asarray(frames, np.float32)
    if factor == 1:
        return x
    h, w = x.shape[-3] // factor * factor, x.shape[-2] // factor * factor
    if h == 0 or w == 0:
        raise DataError(f"frames of {x.shape[-3]}x{x.shape[-2]} px are smaller than the downscale factor "
                        f"{factor}; use a smaller factor or larger frames.")
    x = x[..., :h, :w, :]
    lead = x.shape[:-3]
    x = x.reshape(*lead, h // factor, factor, w // factor, factor, x.shape[-1])
    return x.mean(axis=(-4, -2), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def _decoded(path: str) -> np.ndarray:
    from tfkit.data import read_frames

    frames = read_frames(path)
    frames.setflags(write=False)  # shared by every range cut from it
    return frames


def load_footage(path: str | os.PathLike, *, start: int = 0, stop: int | None = None, downscale: int = 1,
                 min_frames: int = 3) -> Footage:
    """Decode frames [start, stop) of a video with tfkit's reader and area-downscale them.

    Raises DataError when the range holds fewer than `min_frames` frames (3 make one triplet).
    The whole video is decoded once per process and cached (tfkit's reader takes short videos),
    so a train and an eval range of one file cost one decode.
    """
    if start < 0 or (stop is not None and stop <= start):
        raise UsageError(f"frame range [{start}, {stop}) is empty or negative; give 0 <= start < stop")
    path = Path(path)
    raw = _decoded(str(path.resolve()))
    frames = raw[start:stop]
    if len(frames) < min_frames:
        raise DataError(
            f"{path.name} frames [{start}, {stop}) hold {len(frames)} frame(s) but at least {min_frames} are "
            f"needed (the video has {len(raw)} decoded); use a longer video or a wider range.")
    out = area_downscale(frames, downscale) / np.float32(255.0)
    return Footage(path, out, start, start + len(frames), int(downscale))


def triplets(frames: np.ndarray, *, stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(f[t-1], f[t+1], f[t]) for every t (every `stride`-th): the interpolation inputs and target."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 3:
        raise DataError(f"frame interpolation needs (N>=3, H, W, C) frames, got shape {frames.shape}; "
                        "decode a longer range.")
    mid = np.arange(1, len(frames) - 1, max(int(stride), 1))
    return frames[mid - 1], frames[mid + 1], frames[mid]


def check_divisible(h: int, w: int, scale: int, what: str = "super-resolution") -> None:
    if h % scale or w % scale:
        raise UsageError(f"{what} needs a high-res size divisible by the scale {scale}, got {h}x{w}; "
                         f"crop to {h // scale * scale}x{w // scale * scale}.")


def sr_pairs(frames: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(low-res, high-res): the frames area-downscaled by `scale`, and the frames themselves."""
    frames = np.asarray(frames, np.float32)
    check_divisible(frames.shape[-3], frames.shape[-2], scale)
    return area_downscale(frames, scale), frames


def _augment(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    """The same random flip / transpose on every (N, H, W, C) array of one sample."""
    if rng.random() < 0.5:
        arrays = [a[:, ::-1] for a in arrays]
    if rng.random() < 0.5:
        arrays = [a[:, :, ::-1] for a in arrays]
    if rng.random() < 0.5 and all(a.shape[1] == a.shape[2] for a in arrays):
        arrays = [a.transpose(0, 2, 1, 3) for a in arrays]
    return list(arrays)


def _corner(rng: np.random.Generator, h: int, w: int, patch: int) -> tuple[int, int]:
    if h < patch or w < patch:
        raise DataError(f"frames of {h}x{w} px are smaller than the {patch} px training patch; "
                        "use a smaller patch or less downscaling.")
    return int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))


def sample_triplets(frames: np.ndarray, n: int, patch: int, rng: np.random.Generator, *,
                    augment: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` random (a, b, middle) patches of `patch` px; augmented by flips, transposes and time
    reversal (a <-> b), which leave the middle frame the right answer."""
    triplets(frames[:3])  # the shape check, without copying the whole footage three times
    h, w = frames.shape[1:3]
    out = np.empty((3, n, patch, patch, frames.shape[-1]), np.float32)
    for i in range(n):
        t = int(rng.integers(1, len(frames) - 1))  # the middle frame
        y, x = _corner(rng, h, w, patch)
        crop = [frames[s:s + 1, y:y + patch, x:x + patch] for s in (t - 1, t + 1, t)]
        if augment:
            crop = _augment(rng, *crop)
            if rng.random() < 0.5:
                crop[0], crop[1] = crop[1], crop[0]
        out[:, i] = [c[0] for c in crop]
    return out[0], out[1], out[2]


def sample_sr_pairs(frames: np.ndarray, n: int, patch: int, scale: int, rng: np.random.Generator, *,
                    augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`n` random (low-res, high-res) pairs: high-res patches of `patch` px and their area downscale."""
    check_divisible(patch, patch, scale, "a super-resolution training patch")
    h, w = frames.shape[1:3]
    hr = np.empty((n, patch, patch, frames.shape[-1]), np.float32)
    for i in range(n):
        t = int(rng.integers(0, len(frames)))
        y, x = _corner(rng, h, w, patch)
        crop = frames[t:t + 1, y:y + patch, x:x + patch]
        hr[i] = (_augment(rng, crop)[0] if augment else crop)[0]
    return area_downscale(hr, scale), hr


def center_crop(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    """The central h x w of (..., H, W, C) frames."""
    fh, fw = frames.shape[-3], frames.shape[-2]
    if fh < h or fw < w:
        raise DataError(f"frames of {fh}x{fw} px cannot be cropped to {h}x{w}; evaluate at a smaller size.")
    y, x = (fh - h) // 2, (fw - w) // 2
    return frames[..., y:y + h, x:x + w, :]
