"""Streaming decode: only the frames a clip needs, shrunk as they come out of the decoder.

`read_video` holds every frame of a file at full size (a 60 s 1080p phone video is ~21 GB of
RGB). `read_frames_at` seeks to the keyframe before each needed stretch, decodes forward, turns
each needed frame into a small RGB array at once (swscale, then an optional per-frame transform)
and stops after the last one, so memory is bounded by the frames asked for, not by the video.

Example:
    >>> read_frames_at("phone.mp4", [0, 30, 60], short_side=64).shape
    (3, 64, 113, 3)
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tfkit.data.video import (
    _REENCODE_HINT,
    _as_data_error,
    _estimated_frames,
    _existing_file,
    _no_frames,
    _stream_fps,
    _video_stream,
)
from tfkit.errors import DataError

# Seek (to the keyframe before the target) rather than decode forward when the next needed frame
# is more than this far ahead; nearer frames are cheaper to reach by decoding straight on.
_SEEK_GAP_SECONDS = 2.0

Convert = Callable[[av.VideoFrame], np.ndarray]


def _converter(short_side: int | None, transform: Callable[[np.ndarray], np.ndarray] | None) -> Convert:
    """One decoded frame -> a kept uint8 RGB array, shrunk so its short side <= short_side, upright."""
    to_rgb = VideoReformatter()  # reused: it keeps one swscale context per size

    def convert(frame: av.VideoFrame) -> np.ndarray:
        width, height = frame.width, frame.height
        if short_side and min(width, height) > short_side:
            scale = short_side / min(width, height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        rgb = to_rgb.reformat(frame, width=width, height=height, format="rgb24",
                              interpolation="AREA").to_ndarray()
        # Phones store portrait video as landscape plus a display rotation (counterclockwise degrees);
        # players apply it, so clips must too, or every portrait clip lies on its side.
        quarter_turns = round(frame.rotation / 90) % 4
        if quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
        return transform(rgb) if transform is not None else rgb

    return convert


def _decode_error(path, position: int, expected: int, exc: Exception) -> DataError:
    reason = (getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}").splitlines()[0]
    return DataError(f"{path}: decoding failed at frame {position + 1} of ~{expected or '?'} ({reason}); "
                     f"{_REENCODE_HINT}.")


def _decode_wanted(container, stream, wanted: Sequence[int], convert: Convert, path) -> dict[int, np.ndarray]:
    """Decode forward (seeking over long gaps) and convert the frames at the sorted `wanted` indices.

    A frame's index is its time from the stream start x fps (the frame on screen at tick i), so
    seeking needs no frame counting; a wanted index between two frames (variable frame rate)
    takes the earlier one. Only the frame being looked at and the one before it are held.
    """
    fps = _stream_fps(stream)
    expected = stream.frames or _estimated_frames(container, stream)
    time_base = float(stream.time_base) if stream.time_base else 0.0
    origin = stream.start_time
    can_seek = fps > 0 and time_base > 0 and origin is not None
    gap = max(1, round(_SEEK_GAP_SECONDS * fps))

    def decode_from(index: int):
        if index > 0:
            container.seek(origin + int(index / fps / time_base), stream=stream, backward=True)
        elif sought:
            container.seek(origin, stream=stream, backward=True)
        return iter(container.decode(stream))

    kept: dict[int, np.ndarray] = {}
    pending = deque(wanted)
    sought, seek_target = False, -1
    frames = decode_from(0)
    position, previous, previous_rgb, check_overshoot = -1, None, None, False
    while pending:
        # Once per target: a keyframe far before it leaves `position` behind, which is no reason to seek again.
        if can_seek and pending[0] - position > gap and pending[0] > seek_target:
            try:
                frames = decode_from(pending[0])
            except av.error.FFmpegError:  # an unseekable file: decode straight on instead
                can_seek = False
            else:
                sought, seek_target, check_overshoot = True, pending[0], True
                position, previous, previous_rgb = -1, None, None
        try:
            frame = next(frames, None)
        except Exception as exc:  # a damaged packet can raise nearly anything
            at = position if position >= 0 or not sought else seek_target - 1
            raise _decode_error(path, at, expected, exc) from exc
        if frame is None:
            break
        timed = frame.pts is not None and time_base > 0 and fps > 0
        restart = (sought and not timed) or (check_overshoot and timed and
                                             round((frame.pts - origin) * time_base * fps) > pending[0])
        check_overshoot = False
        if restart:  # counting frames is only right from the start, and so is a seek that overshot
            can_seek = False
            frames, sought = decode_from(0), False
            position, previous, previous_rgb = -1, None, None
            continue
        if timed and origin is None:
            origin = frame.pts
        index = max(0, round((frame.pts - origin) * time_base * fps)) if timed else position + 1
        frame_rgb = None
        while pending and pending[0] <= index:
            if pending[0] == index or previous is None:
                frame_rgb = frame_rgb if frame_rgb is not None else convert(frame)
                kept[pending.popleft()] = frame_rgb
            else:
                previous_rgb = previous_rgb if previous_rgb is not None else convert(previous)
                kept[pending.popleft()] = previous_rgb
        position, previous, previous_rgb = index, frame, frame_rgb
    if pending:
        if previous is None:
            raise _no_frames(path)
        tolerance = max(2, expected // 50)  # containers' counts and durations are approximate
        if expected and position + 1 < expected - tolerance:
            raise DataError(f"{path}: decoding stopped at frame {position + 1} of ~{expected} (the file looks "
                            f"cut short or damaged); {_REENCODE_HINT}.")
        last = previous_rgb if previous_rgb is not None else convert(previous)
        kept.update((index, last) for index in pending)  # a window past the end repeats the last frame
    return kept


def read_frames_at(path: str | os.PathLike, indices: Sequence[int] | np.ndarray, *,
                   short_side: int | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed) as one uint8 array, decoded by streaming.

    Each needed frame is converted as soon as it is decoded: to RGB with its short side shrunk
    to at most `short_side` (swscale's area filter), then `transform` (e.g. resize_crop to the
    clip size). Nothing else is kept, so memory grows with len(indices) x the kept frame size.
    Raises DataError naming the file, and the frame where decoding broke, for damaged files.

    Example:
        >>> read_frames_at("clip.mp4", [3, 0, 3]).shape
        (3, 32, 32, 3)
    """
    order = np.asarray(indices, dtype=np.int64).ravel()
    if order.size == 0 or order.min() < 0:
        raise ValueError(f"indices must be non-empty and >= 0, got {order.tolist()}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    path = _existing_file(path)
    with _as_data_error(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        kept = _decode_wanted(container, stream, np.unique(order).tolist(), _converter(short_side, transform),
                              path)
    return np.stack([kept[index] for index in order.tolist()])
