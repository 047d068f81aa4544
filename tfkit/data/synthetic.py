"""The built-in dataset: generated camera/texture motion videos, no download.

Seven classes share one kind of picture (a random, smooth, coloured, periodic texture plus
sensor noise), so no single frame tells the class; only the motion across frames does:

    left / right / up / down  the content slides that way on screen, 1.5-4 px per frame
    rotate                    it turns about the centre, 3-8 deg per frame, either direction
    zoom                      it grows or shrinks by 2-5 % per frame (scale 1 at the middle frame)
    static                    it stays put; only the noise changes

Each video is drawn from its own generator seeded by (seed, class, index), so a video does not
depend on how many others are made, and the same seed gives byte-identical files.

Example:
    >>> root = generate_motion_dataset("motion/", videos_per_class=10, progress=False)
    >>> sorted(p.name for p in root.iterdir())[:3]
    ['dataset.json', 'down', 'left']
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from tfkit.atomic import write_text_atomic
from tfkit.data.video import encoder_for, write_video
from tfkit.errors import InputPathError, UnknownNameError, UsageError
from tfkit.progress import progress_bar

MOTION_CLASSES = ("left", "right", "up", "down", "rotate", "zoom", "static")

# How each clip transform acts on the labels (classes not named keep theirs). Training uses these
# for label-aware augmentation: a flipped "left" clip is a "right" clip with a new-looking texture,
# which keeps a small model from memorising textures instead of learning motion.
MOTION_SYMMETRIES = {
    "hflip": {"left": "right", "right": "left"},
    "vflip": {"up": "down", "down": "up"},
    "transpose": {"left": "up", "up": "left", "right": "down", "down": "right"},
    "reverse": {"left": "right", "right": "left", "up": "down", "down": "up"},
}

_SUFFIX = ".mp4"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Motion:
    """Per-frame content motion: shift (px, image axes: x right, y down), turn (rad), scale."""

    dx: np.ndarray
    dy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray


def _still(t: np.ndarray) -> Motion:
    zeros = np.zeros_like(t)
    return Motion(zeros, zeros, zeros, np.ones_like(t))


def _slide(direction_x: float, direction_y: float) -> Callable[[np.random.Generator, np.ndarray], Motion]:
    def motion(rng: np.random.Generator, t: np.ndarray) -> Motion:
        speed = rng.uniform(1.5, 4.0)
        still = _still(t)
        return Motion(direction_x * speed * t, direction_y * speed * t, still.angle, still.scale)

    return motion


def _rotate(rng: np.random.Generator, t: np.ndarray) -> Motion:
    rate = np.deg2rad(rng.uniform(3.0, 8.0)) * rng.choice([-1.0, 1.0])
    still = _still(t)
    return Motion(still.dx, still.dy, rate * t, still.scale)


def _zoom(rng: np.random.Generator, t: np.ndarray) -> Motion:
    growth = (1.0 + rng.uniform(0.02, 0.05)) ** rng.choice([-1.0, 1.0])
    middle = (len(t) - 1) / 2  # scale 1 mid-clip, so frame sharpness does not give zoom away
    still = _still(t)
    return Motion(still.dx, still.dy, still.angle, growth ** (t - middle))


_MOTIONS: dict[str, Callable[[np.random.Generator, np.ndarray], Motion]] = {
    "left": _slide(-1.0, 0.0),
    "right": _slide(1.0, 0.0),
    "up": _slide(0.0, -1.0),
    "down": _slide(0.0, 1.0),
    "rotate": _rotate,
    "zoom": _zoom,
    "static": lambda rng, t: _still(t),
}


def _texture(rng: np.random.Generator, period: int) -> np.ndarray:
    """A smooth colour texture, periodic in both axes, (period, period, 3) float32, unit std.

    Built in the Fourier domain, so it tiles seamlessly: low-pass 1/f^a noise plus a few
    gratings (each one strong Fourier coefficient, a whole number of cycles per period), then
    colours mixed by a random matrix.
    """
    fy = np.fft.fftfreq(period)[:, None] * period  # cycles per period
    fx = np.fft.rfftfreq(period)[None, :] * period
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    cutoff = period / rng.uniform(10.0, 20.0)  # blobs ~10-20 px across: smooth enough that motion
    # between sampled frames stays learnable by a small model, detailed enough to measure it
    falloff = radius ** -rng.uniform(1.2, 1.8) * np.exp(-((radius / cutoff) ** 2))
    falloff[0, 0] = 0.0
    shape = (3, *falloff.shape)
    real, imaginary = rng.standard_normal((2, *shape), dtype=np.float32)
    spectrum = (real + 1j * imaginary) * falloff.astype(np.float32)  # complex64 throughout
    energy = np.abs(spectrum).sum(axis=(1, 2))
    most = max(1, period // 32)  # gratings no finer than 32 px per cycle
    for _ in range(rng.integers(1, 4)):
        gy, gx = rng.integers(-most, most + 1), rng.integers(1, most + 1)
        strength = rng.uniform(0.2, 1.0) * 0.02 * energy
        spectrum[:, gy, gx] += strength * np.exp(2j * np.pi * rng.uniform(size=3))
    fields = np.fft.irfft2(spectrum, s=(period, period))
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True)
    colours = rng.normal(size=(3, 3)) + 2.0 * np.eye(3)
    image = np.einsum("cyx,dc->yxd", fields, colours)
    return ((image - image.mean()) / image.std()).astype(np.float32)


def _sample_periodic(texture: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear lookup of texture at float coordinates, wrapping around (the texture tiles)."""
    period = texture.shape[0]
    planes = np.ascontiguousarray(texture.transpose(2, 0, 1).reshape(3, -1))  # 1-D gathers are fast
    y_floor, x_floor = np.floor(ys), np.floor(xs)
    wy, wx = ys - y_floor, xs - x_floor
    y0, x0 = y_floor.astype(np.int64) % period, x_floor.astype(np.int64) % period
    y1, x1 = (y0 + 1) % period * period, (x0 + 1) % period
    y0 *= period
    corners = ((y0 + x0, (1 - wy) * (1 - wx)), (y0 + x1, (1 - wy) * wx),
               (y1 + x0, wy * (1 - wx)), (y1 + x1, wy * wx))
    out = np.empty((*ys.shape, 3), np.float32)
    for channel, plane in enumerate(planes):
        out[..., channel] = sum(np.take(plane, index) * weight for index, weight in corners)
    return out


def motion_video(class_name: str, rng: np.random.Generator, *, frames: int, size: int) -> np.ndarray:
    """One video of `class_name` motion, uint8 (frames, size, size, 3), drawn from `rng`.

    Example:
        >>> motion_video("left", np.random.default_rng(0), frames=8, size=32).shape
        (8, 32, 32, 3)
    """
    if class_name not in _MOTIONS:
        raise UnknownNameError("motion class", class_name, MOTION_CLASSES)
    # Periodic texture a bit larger than the frame; wider views (zooming out) wrap seamlessly.
    period = 1 << max(6, int(np.ceil(np.log2(1.5 * size))))
    texture = _texture(rng, period)
    t = np.arange(frames, dtype=np.float64)
    motion = _MOTIONS[class_name](rng, t)
    origin = rng.uniform(0, period, size=2).astype(np.float32)  # texture point under the centre
    grid = np.arange(size, dtype=np.float32) - (size - 1) / 2
    contrast, brightness = rng.uniform(38.0, 58.0), rng.uniform(-20.0, 20.0)
    noise_std = rng.uniform(3.0, 8.0)
    video = np.empty((frames, size, size, 3), np.uint8)
    # Frame by frame: small temporaries stay in cache and skip the page faults of big ones.
    for index in range(frames):
        # Inverse map, screen -> texture: undo the shift, then the turn, then the scale.
        u = grid[None, :] - np.float32(motion.dx[index])
        v = grid[:, None] - np.float32(motion.dy[index])
        cos, sin = np.cos(motion.angle[index]), np.sin(motion.angle[index])
        inverse_scale = 1.0 / motion.scale[index]
        xs = np.float32(cos * inverse_scale) * u + np.float32(sin * inverse_scale) * v + origin[1]
        ys = np.float32(-sin * inverse_scale) * u + np.float32(cos * inverse_scale) * v + origin[0]
        pixels = _sample_periodic(texture, ys.astype(np.float32), xs.astype(np.float32))
        noise = rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(noise_std)
        frame = pixels * np.float32(contrast) + np.float32(128.0 + brightness) + noise
        np.clip(np.rint(frame), 0, 255, out=frame)
        video[index] = frame
    return video


@dataclass(frozen=True)
class _Params:
    videos_per_class: int
    frames: int
    size: int
    fps: float
    seed: int


def _manifest(params: _Params) -> dict:
    return {
        "name": "tfkit-motion",
        "generator": "tfkit.data.synthetic.generate_motion_dataset",
        "format_version": _FORMAT_VERSION,
        "classes": list(MOTION_CLASSES),
        "symmetries": MOTION_SYMMETRIES,
        **asdict(params),
        "encoder": encoder_for(_SUFFIX),
        "pyav": av.__version__,
        "layout": "<class>/<class>_<index:03d>.mp4",
    }


def _video_paths(root: Path, videos_per_class: int) -> list[tuple[int, str, int, Path]]:
    return [
        (class_index, name, i, root / name / f"{name}_{i:03d}{_SUFFIX}")
        for class_index, name in enumerate(MOTION_CLASSES)
        for i in range(videos_per_class)
    ]


_OWN_VIDEO = re.compile(r"^(?:\.[^/]*\.tmp\.mp4|(?P<cls>[a-z]+)_\d{3}\.mp4)$")


def _generated_here(root: Path) -> bool:
    """Whether everything in root looks like an earlier (perhaps interrupted) generation."""
    for entry in root.iterdir():
        if entry.name == "dataset.json":
            continue
        if entry.name not in MOTION_CLASSES or not entry.is_dir():
            return False
        for video in entry.iterdir():
            match = _OWN_VIDEO.match(video.name)
            if not match or match["cls"] not in (None, entry.name):
                return False
    return True


def _prepare_root(root: Path, manifest: dict, overwrite: bool) -> bool:
    """True when root already holds this exact dataset; else clears earlier generated videos.

    Only the class folders are ever removed, and only when they hold nothing but generated
    videos, or when the caller passed overwrite=True.
    """
    if root.exists() and not root.is_dir():
        raise InputPathError(f"{str(root)!r} is a file; give a folder for the motion dataset.")
    if not root.exists():
        return False
    manifest_path = root / "dataset.json"
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            old = None
        paths = _video_paths(root, manifest["videos_per_class"])
        if old == manifest and all(path.is_file() for *_, path in paths):
            return True
    if not (overwrite or _generated_here(root)):
        raise UsageError(
            f"{root} holds other files; pick an empty or new folder for the motion dataset, "
            f"or pass overwrite=True to replace its class folders ({', '.join(MOTION_CLASSES)})."
        )
    manifest_path.unlink(missing_ok=True)  # first: a half-cleared folder must not look complete
    for name in MOTION_CLASSES:
        shutil.rmtree(root / name, ignore_errors=True)
    return False


def generate_motion_dataset(root: str | os.PathLike, *, videos_per_class: int = 60, frames: int = 24,
                            size: int = 80, fps: float = 12, seed: int = 0, progress: bool = True,
                            overwrite: bool = False) -> Path:
    """Write root/<class>/<class>_<i:03d>.mp4 for every class in MOTION_CLASSES, then dataset.json.

    dataset.json (written last, so its presence means the set is complete) records the
    parameters and seed; calling again with the same ones returns at once. A non-empty root
    with other contents needs overwrite=True, which replaces only the class folders.

    Example:
        >>> generate_motion_dataset("motion/", videos_per_class=3, frames=8, size=32, progress=False)
        PosixPath('motion')
    """
    if videos_per_class < 1 or frames < 2 or size < 16 or size % 2 or fps <= 0 or seed < 0:
        raise UsageError(
            "generate_motion_dataset needs videos_per_class >= 1, frames >= 2, an even size >= 16, "
            f"fps > 0 and seed >= 0; got {videos_per_class=}, {frames=}, {size=}, {fps=}, {seed=}."
        )
    root = Path(root)
    params = _Params(videos_per_class, frames, size, float(fps), seed)
    manifest = _manifest(params)
    if _prepare_root(root, manifest, overwrite):
        return root
    jobs = _video_paths(root, videos_per_class)
    with progress_bar("generating motion videos", len(jobs), enabled=progress) as advance:
        for class_index, name, i, path in jobs:
            rng = np.random.default_rng([seed, class_index, i])
            write_video(path, motion_video(name, rng, frames=frames, size=size), fps=fps)
            advance()
    _write_json(root / "dataset.json", manifest)
    return root


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
