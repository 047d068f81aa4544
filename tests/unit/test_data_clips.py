"""tfkit.data.clips: index sampling, resize + crop, normalization, and decoding a clip."""
from __future__ import annotations

import numpy as np
import pytest

from tfkit.data.clips import load_clip, normalize, resize_crop, sample_indices
from tfkit.data.video import write_video
from tfkit.types import ClipSpec, Normalization

# --- sample_indices -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "n_frames, stride, start, expected",
    [
        (30, 2, 0, [0, 2, 4, 6]),
        (30, 2, 5, [5, 7, 9, 11]),
        (30, 2, "center", [11, 13, 15, 17]),  # window spans 7 frames: (30 - 7) // 2 = 11
        (30, 1, "center", [13, 14, 15, 16]),
        (5, 2, 0, [0, 2, 4, 4]),  # too short: the last frame repeats
        (5, 2, "center", [0, 2, 4, 4]),
        (1, 3, 0, [0, 0, 0, 0]),
    ],
)
def test_sample_by_stride(n_frames, stride, start, expected):
    clip = ClipSpec(frames=4, stride=stride)
    indices = sample_indices(n_frames, 30.0, clip, start=start)
    assert indices.dtype == np.int64
    assert indices.tolist() == expected


@pytest.mark.parametrize(
    "src_fps, fps, expected",
    [
        (30.0, 10.0, [0, 3, 6, 9]),
        (25.0, 10.0, [0, 2, 5, 7]),  # 2.5 source frames a tick: the frame on screen at each tick
        (12.0, 12.0, [0, 1, 2, 3]),
        (12.0, 24.0, [0, 0, 1, 1]),  # upsampling repeats frames
        (29.97, 9.99, [0, 3, 6, 9]),  # float rates that divide exactly stay exact
    ],
)
def test_sample_by_fps(src_fps, fps, expected):
    clip = ClipSpec(frames=4, stride=5, fps=fps)  # fps overrides stride
    assert sample_indices(100, src_fps, clip).tolist() == expected


def test_sample_by_fps_centres_and_pads():
    clip = ClipSpec(frames=4, fps=10.0)
    assert sample_indices(30, 30.0, clip, start="center").tolist() == [10, 13, 16, 19]
    assert sample_indices(7, 30.0, clip).tolist() == [0, 3, 6, 6]


def test_sample_rejects_bad_arguments():
    clip = ClipSpec(frames=4)
    with pytest.raises(ValueError):
        sample_indices(0, 30.0, clip)
    with pytest.raises(ValueError):
        sample_indices(10, 30.0, clip, start=10)
    with pytest.raises(ValueError):
        sample_indices(10, 30.0, clip, start="middle")
    with pytest.raises(ValueError, match="source fps"):
        sample_indices(10, 0.0, ClipSpec(frames=4, fps=10.0))


# --- resize_crop ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 120, 160, 3), (2, 160, 120, 3), (1, 64, 64, 3), (3, 40, 50, 3)])
def test_resize_crop_shape(shape):
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = resize_crop(frames, 64)
    assert out.shape == (shape[0], 64, 64, 3) and out.dtype == np.uint8


def test_resize_crop_single_frame():
    assert resize_crop(np.zeros((90, 70, 3), np.uint8), 32).shape == (32, 32, 3)


def test_same_short_side_is_an_exact_center_crop():
    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 100, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_crop(frames, 64), frames[:, :, 18:82])


@pytest.mark.parametrize("size", [16, 50, 64, 96])
def test_constant_colour_stays_exact(size):
    frames = np.empty((1, 72, 90, 3), np.uint8)
    frames[...] = (17, 130, 250)
    out = resize_crop(frames, size)
    assert (out == np.array([17, 130, 250], np.uint8)).all()


def test_left_right_halves_survive_resize_and_crop():
    # 128 x 192 -> short side 64 means scale 1/2 and a crop of source columns 32..160;
    # the red/blue edge at source column 96 lands on output column 32.
    frames = np.zeros((1, 128, 192, 3), np.uint8)
    frames[:, :, :96] = (255, 0, 0)
    frames[:, :, 96:] = (0, 0, 255)
    out = resize_crop(frames, 64)[0]
    assert (out[:, :32] == (255, 0, 0)).all()
    assert (out[:, 32:] == (0, 0, 255)).all()


def test_checkerboard_halves_cleanly():
    block = 8
    yy, xx = np.mgrid[0:128, 0:128]
    board = (((yy // block) + (xx // block)) % 2 * 255).astype(np.uint8)
    frames = np.repeat(board[None, :, :, None], 3, axis=-1)
    out = resize_crop(frames, 64)[0, :, :, 0]
    expected = ((np.mgrid[0:64, 0:64][0] // 4 + np.mgrid[0:64, 0:64][1] // 4) % 2 * 255)
    np.testing.assert_array_equal(out, expected)


def test_fine_stripes_average_instead_of_aliasing():
    # 1-px stripes shrunk 4x: area resampling gives flat grey, point sampling would give 0 or 255.
    stripes = np.zeros((1, 256, 256, 3), np.uint8)
    stripes[:, :, ::2] = 255
    out = resize_crop(stripes, 64).astype(float)
    assert abs(out.mean() - 127.5) < 1.0 and out.std() < 1.0


def test_upscaling_keeps_a_ramp_monotonic():
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8)[None, None, :, None], (1, 32, 1, 3))
    out = resize_crop(ramp, 64)[0, 10, :, 0].astype(int)
    assert out[0] <= 8 and out[-1] >= 247 and np.all(np.diff(out) >= 0)


def test_resize_crop_rejects_non_uint8():
    with pytest.raises(ValueError):
        resize_crop(np.zeros((1, 32, 32, 3), np.float32), 16)


# --- normalize ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "normalization, low, high",
    [(Normalization.UNIT, 0.0, 1.0), (Normalization.SYMMETRIC, -1.0, 1.0), ("symmetric", -1.0, 1.0)],
)
def test_normalize_ranges(normalization, low, high):
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    x = normalize(pixels, normalization)
    assert x.dtype == np.float32 and x.shape == pixels.shape
    assert x.min() == pytest.approx(low, abs=1e-6) and x.max() == pytest.approx(high, abs=1e-6)
    assert np.all(np.diff(x[0, :, :, 0].ravel()) > 0)


def test_normalize_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        normalize(np.zeros(4, np.float32), Normalization.UNIT)


# --- load_clip: decode + sample + resize on a real file ---------------------------------------

@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    """20 frames, 48 x 64, frame i a flat grey of level 10 * i, so the index shows in the pixels."""
    levels = (10 * np.arange(20)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (20, 48, 64, 3)).copy()
    return write_video(tmp_path_factory.mktemp("clips") / "numbered.mp4", frames, fps=12)


def decoded_levels(clip: np.ndarray) -> list[int]:
    return [round(v / 10) for v in clip.mean(axis=(1, 2, 3))]


@pytest.mark.parametrize(
    "spec, start, expected",
    [
        (ClipSpec(frames=4, size=32, stride=3), 0, [0, 3, 6, 9]),
        (ClipSpec(frames=4, size=32, stride=3), "center", [5, 8, 11, 14]),
        (ClipSpec(frames=4, size=32, fps=6.0), 0, [0, 2, 4, 6]),
        (ClipSpec(frames=8, size=32, stride=4), 0, [0, 4, 8, 12, 16, 19, 19, 19]),
    ],
)
def test_load_clip_picks_the_right_frames(numbered_video, spec, start, expected):
    clip = load_clip(numbered_video, spec, start=start)
    assert clip.shape == spec.shape and clip.dtype == np.uint8
    assert decoded_levels(clip) == expected
