"""Video files in and out through PyAV (the FFmpeg bundled in its wheel); no OpenCV.

Every PyAV failure is turned into a tfkit error that names the file and says what to do:
a missing path is `InputPathError`, anything that does not decode as video is `DataError`.

Example:
    >>> write_video("clip.mp4", np.zeros((8, 32, 32, 3), np.uint8), fps=12)
    PosixPath('clip.mp4')
    >>> read_frames("clip.mp4").shape
    (8, 32, 32, 3)
"""
from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tfkit.atomic import atomic_path
from tfkit.errors import DataError, InputPathError, TfkitError, ToolNotFoundError, UnknownNameError

_REENCODE_HINT = "re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or remove it"
# FFmpeg renders any text file as "video" (the tty demuxer, ANSI-art codecs); that is never a clip.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `frames` is the container's count, or, where the container keeps
    none (mkv, webm), counted by decoding or (probe(count=False)) estimated from duration x fps;
    `exact` says which."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    codec: str
    exact: bool = True


@dataclass(frozen=True, eq=False)
class Video:
    """Decoded frames, uint8 (N, H, W, 3) RGB, with the file's `VideoInfo`."""

    frames: np.ndarray
    info: VideoInfo


@dataclass(frozen=True)
class _Container:
    """How one file suffix is written: the FFmpeg muxer and encoders in order of preference."""

    muxer: str
    encoders: tuple[str, ...]


# The first encoder the bundled FFmpeg has wins; h264 first where the container allows it.
_CONTAINERS = {
    ".mp4": _Container("mp4", ("libx264", "mpeg4")),
    ".mov": _Container("mov", ("libx264", "mpeg4")),
    ".mkv": _Container("matroska", ("libx264", "mpeg4")),
    ".avi": _Container("avi", ("mpeg4",)),
    ".webm": _Container("webm", ("libvpx", "libvpx-vp9")),
}

# Fixed, near-lossless settings; with one thread every encoder here is deterministic, except
# libx264's AVX-512 kernels: on a CPU that has AVX-512, the same frames encoded twice gave different
# bytes (7-12 of 21 test videos), so on x86 x264 is held to AVX2 (asm=avx2: 0 of 21).
_X264_X86 = {"x264-params": "asm=avx2"} if platform.machine().lower() in ("x86_64", "amd64") else {}
_ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast", "crf": "18", **_X264_X86},
    "mpeg4": {"flags": "+qscale", "global_quality": str(3 * 118)},  # -q:v 3 (118 = FF_QP2LAMBDA)
    "libvpx": {"crf": "8", "b": "4M", "deadline": "good", "cpu-used": "4"},
    "libvpx-vp9": {"crf": "20", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "0"},
}


def encoder_for(suffix: str) -> str:
    """The encoder `write_video` uses for a file suffix, e.g. encoder_for(".mp4") -> "libx264".

    Raises UnknownNameError for a suffix it cannot write and ToolNotFoundError when the bundled
    FFmpeg has none of the encoders that container takes.
    """
    suffix = suffix.lower()
    if suffix not in _CONTAINERS:
        raise UnknownNameError("video container suffix", suffix, _CONTAINERS)
    for name in _CONTAINERS[suffix].encoders:
        if _has_encoder(name):
            return name
    raise ToolNotFoundError(
        f"The FFmpeg bundled with PyAV {av.__version__} has none of "
        f"{', '.join(_CONTAINERS[suffix].encoders)} to write {suffix} files; "
        f"write .mp4 or .avi instead, or install a PyAV wheel built with them."
    )


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputPathError(f"Video file {str(path)!r} does not exist; check the path.")
    if path.is_dir():
        raise InputPathError(f"{str(path)!r} is a folder, not a video file; give a file path.")
    return path


@contextlib.contextmanager
def _as_data_error(path: Path) -> Iterator[None]:
    """Turn whatever PyAV throws on a bad file (av.error.*, ValueError, ...) into DataError."""
    try:
        yield
    except TfkitError:
        raise
    except av.error.FFmpegError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"{path}: not a decodable video ({reason}); {_REENCODE_HINT}.") from exc
    except Exception as exc:  # garbage input can raise nearly anything
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DataError(f"{path}: not a decodable video ({reason}); {_REENCODE_HINT}.") from exc


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise DataError(f"{path}: has no video stream (audio-only or not a video); {_REENCODE_HINT}.")
    stream = container.streams.video[0]
    if stream.codec_context.name in _TEXT_CODECS:
        raise DataError(f"{path}: is a text file, not a video; replace it with a video file or remove it.")
    # Frame threading delays every frame by the thread count and costs more than it saves on
    # the short, small videos tfkit reads; one thread is several times faster here.
    stream.codec_context.thread_count = 1
    return stream


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _no_frames(path: Path) -> DataError:
    return DataError(f"{path}: video stream holds no decodable frames; {_REENCODE_HINT}.")


def _estimated_frames(container, stream) -> int:
    """Duration x fps, for containers that store no frame count (0 where neither is known)."""
    fps = _stream_fps(stream)
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return 0
    return max(1, round(seconds * fps)) if fps > 0 else 0


def probe(path: str | os.PathLike, *, count: bool = True) -> VideoInfo:
    """Frame count, fps, size and codec of a video file.

    Where the container stores no frame count, `count=True` decodes the stream to count them
    (exact, slow on long videos); `count=False` estimates duration x fps (`info.exact` False) and
    decodes only when the container has no duration either.

    Example:
        >>> probe("clip.mp4").frames
        8
    """
    path = _existing_file(path)
    with _as_data_error(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        frames, exact = stream.frames, True
        if not frames and not count:
            frames, exact = _estimated_frames(container, stream), False
        if not frames:
            frames, exact = sum(1 for _ in container.decode(stream)), True
        if frames == 0:
            raise _no_frames(path)
        ctx = stream.codec_context
        return VideoInfo(path, frames, _stream_fps(stream), ctx.width, ctx.height, ctx.name, exact)


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> Video:
    """Decode a whole (short) video, or its first `max_frames` frames, to uint8 RGB.

    Holds every frame at full size: for clips out of real footage use `read_frames_at` (or
    tfkit.data.clips.load_clips), which keep only the frames they need, already shrunk.

    Example:
        >>> read_video("clip.mp4").frames.shape
        (8, 32, 32, 3)
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    path = _existing_file(path)
    with _as_data_error(path), av.open(str(path)) as container:
        stream = _video_stream(container, path)
        # One reformatter for all frames: frame.to_ndarray(format=...) builds a new swscale
        # context per frame, which costs 4x the decoding itself on small videos.
        to_rgb = VideoReformatter()
        frames = []
        for frame in container.decode(stream):
            frames.append(to_rgb.reformat(frame, format="rgb24").to_ndarray())
            if max_frames is not None and len(frames) >= max_frames:
                break
        if not frames:
            raise _no_frames(path)
        stacked = np.stack(frames)
        counted = len(frames) if max_frames is None or len(frames) < max_frames else stream.frames
        height, width = stacked.shape[1:3]
        info = VideoInfo(path, counted or len(frames), _stream_fps(stream), width, height,
                         stream.codec_context.name)
        return Video(stacked, info)


def read_frames(path: str | os.PathLike, *, max_frames: int | None = None) -> np.ndarray:
    """All frames (or the first `max_frames`) as uint8 (N, H, W, 3) RGB.

    Example:
        >>> read_frames("clip.mp4", max_frames=2).shape
        (2, 32, 32, 3)
    """
    return read_video(path, max_frames=max_frames).frames


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column once where odd."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 12.0) -> Path:
    """Encode uint8 (N, H, W, 3) RGB frames; the suffix picks the container and codec.

    .mp4/.mov/.mkv use h264 (libx264) when the bundled FFmpeg has it, else mpeg4; .avi uses
    mpeg4; .webm uses VP8 (or VP9). Odd sizes gain one repeated row/column (yuv420p needs even
    sizes). Encoding is single-threaded with fixed options and bit-exact muxing, so identical
    frames give identical bytes. The file appears atomically (temp file + os.replace).

    Example:
        >>> write_video("out/clip.webm", np.zeros((4, 16, 16, 3), np.uint8), fps=8)
        PosixPath('out/clip.webm')
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DataError(
            f"write_video({str(path)!r}) needs uint8 frames shaped (N, H, W, 3) with N >= 1; got "
            f"{frames.dtype} {frames.shape}. Convert with np.clip(x, 0, 255).astype(np.uint8)."
        )
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    encoder = encoder_for(path.suffix)
    frames = _even_sized(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden temp name in the same folder: os.replace stays atomic and folder scans skip it.
    try:
        with atomic_path(path) as tmp:
            _encode(tmp, frames, encoder, _CONTAINERS[path.suffix.lower()].muxer, fps)
    except av.error.FFmpegError as exc:
        raise DataError(f"Could not write {path} with {encoder}: {exc.strerror}.") from exc
    return path


def _encode(tmp: Path, frames: np.ndarray, encoder: str, muxer: str, fps: float) -> None:
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    with av.open(str(tmp), "w", format=muxer) as container:
        container.flags |= av.container.Flags.bitexact.value  # no random ids, no version tags
        stream = container.add_stream(encoder, rate=rate, options=dict(_ENCODER_OPTIONS[encoder]))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        time_base = Fraction(rate.denominator, rate.numerator)
        to_yuv = VideoReformatter()  # reused: the encoder's own per-frame conversion is 3x slower
        for index, pixels in enumerate(frames):
            frame = to_yuv.reformat(av.VideoFrame.from_ndarray(pixels, format="rgb24"), format="yuv420p")
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
