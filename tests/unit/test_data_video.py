"""tfkit.data.video against the real FFmpeg bundled in PyAV: round trips, probing, bad files."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest

from tfkit.data.video import encoder_for, probe, read_frames, read_video, write_video
from tfkit.errors import DataError, InputPathError, ToolNotFoundError, UnknownNameError

SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
EXPECTED_CODECS = {"libx264": "h264", "mpeg4": "mpeg4", "libvpx": "vp8", "libvpx-vp9": "vp9"}


def smooth_frames(n: int = 10, height: int = 48, width: int = 64) -> np.ndarray:
    """Moving colour gradients: smooth enough that a lossy codec keeps them within a few levels."""
    t = np.arange(n)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = 40 + 2.5 * x + 3 * t
    green = 30 + 3.0 * y + 0 * t
    blue = 200 - 1.5 * x - 1.5 * y + 2 * t
    channels = np.broadcast_arrays(red, green, blue)
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def encoder_or_skip(suffix: str) -> str:
    try:
        return encoder_for(suffix)
    except ToolNotFoundError as exc:
        pytest.skip(f"bundled FFmpeg cannot write {suffix}: {exc}")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_write_read_round_trip(tmp_path, suffix):
    encoder = encoder_or_skip(suffix)
    frames = smooth_frames()
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=12)
    decoded = read_frames(path)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    error = np.abs(decoded.astype(np.int16) - frames).mean()
    assert error < 4.0, f"{suffix} via {encoder}: mean abs error {error:.2f}"
    # Frame order survives: the red ramp brightens by 3 levels a frame.
    assert np.all(np.diff(decoded[..., 0].mean(axis=(1, 2))) > 1.5)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_probe_reports_the_written_video(tmp_path, suffix):
    encoder = encoder_or_skip(suffix)
    path = write_video(tmp_path / f"clip{suffix}", smooth_frames(n=7), fps=15)
    info = probe(path)
    assert (info.frames, info.width, info.height) == (7, 64, 48)
    assert info.fps == pytest.approx(15.0)
    assert info.codec == EXPECTED_CODECS[encoder]
    assert info.path == path


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_encoding_is_deterministic(tmp_path, suffix):
    encoder_or_skip(suffix)
    frames = np.random.default_rng(3).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    first = write_video(tmp_path / f"a{suffix}", frames)
    second = write_video(tmp_path / f"b{suffix}", frames)
    assert first.read_bytes() == second.read_bytes()
    np.testing.assert_array_equal(read_frames(first), read_frames(second))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "clip.mp4"
    write_video(target, smooth_frames(n=3))
    write_video(target, smooth_frames(n=4))  # replacing an existing file
    assert sorted(os.listdir(target.parent)) == ["clip.mp4"]
    assert probe(target).frames == 4


def test_odd_sizes_are_padded_to_even(tmp_path):
    frames = smooth_frames(n=3, height=33, width=47)
    decoded = read_frames(write_video(tmp_path / "odd.mp4", frames))
    assert decoded.shape == (3, 34, 48, 3)
    assert np.abs(decoded[:, :33, :47].astype(np.int16) - frames).mean() < 4.0


def test_max_frames_stops_early(tmp_path):
    path = write_video(tmp_path / "clip.mkv", smooth_frames(n=10))
    video = read_video(path, max_frames=3)
    assert video.frames.shape[0] == 3
    np.testing.assert_array_equal(video.frames, read_frames(path)[:3])
    assert read_video(path).info.frames == 10
    with pytest.raises(ValueError):
        read_frames(path, max_frames=0)


def test_write_rejects_bad_frames_and_suffixes(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(DataError):
        write_video(tmp_path / "a.mp4", np.zeros((0, 16, 16, 3), np.uint8))
    with pytest.raises(UnknownNameError, match=r"\.gif"):
        write_video(tmp_path / "a.gif", smooth_frames(n=2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("reader", [probe, read_frames])
def test_missing_path_is_an_input_path_error(tmp_path, reader):
    with pytest.raises(InputPathError, match="does not exist"):
        reader(tmp_path / "nope.mp4")
    with pytest.raises(InputPathError, match="folder"):
        reader(tmp_path)


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _text(path):
    path.write_text("this is a note, not a video\n" * 40)


def _empty(path):
    path.write_bytes(b"")


def _no_frames(path):
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # header and trailer, no frames


def _truncated_mp4(path):
    data = write_video(path, smooth_frames(n=6)).read_bytes()
    path.write_bytes(data[: len(data) // 2])  # mp4 keeps its index at the end: now unreadable


def _audio_only(path):
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize(
    "name, make, why",
    [("garbage.mp4", _random_bytes, "not a decodable video"), ("notes.txt", _text, "text file"),
     ("empty.mp4", _empty, "not a decodable video"), ("hollow.avi", _no_frames, "no decodable frames"),
     ("sound.wav", _audio_only, "no video stream"), ("cut.mp4", _truncated_mp4, "not a decodable video")],
)
@pytest.mark.parametrize("reader", [probe, read_frames])
def test_undecodable_files_are_data_errors_naming_the_file(tmp_path, name, make, why, reader):
    path = tmp_path / name
    make(path)
    with pytest.raises(DataError) as caught:
        reader(path)
    message = str(caught.value)
    assert name in message and why in message and "\n" not in message
    assert "remove" in message  # says what to do
