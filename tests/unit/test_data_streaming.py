"""Streaming decode, clip windows, split by video, counts and errors: real videos through PyAV."""
from __future__ import annotations

import json
import tracemalloc
import warnings
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfkit.data.clips import WindowMode, Windows, clip_span, load_clip, load_clips, window_starts
from tfkit.data.decode import read_frames_at
from tfkit.data.folder import load_dataset
from tfkit.data.video import probe, read_frames, write_video
from tfkit.errors import DataError, UsageError
from tfkit.types import ClipSpec

CLIP = ClipSpec(frames=4, size=16, stride=2)  # spans 7 source frames


def numbered(n: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frame i is a flat grey of level 4 * i (mod 256 wraps past 63, so keep n <= 60 to read it back)."""
    levels = (4 * np.arange(n) % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def levels_of(frames: np.ndarray) -> list[int]:
    return [round(v / 4) for v in frames.reshape(len(frames), -1).mean(axis=1)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """60 numbered frames at 12 fps in every container (2 s seek gap = 24 frames, so seeks happen)."""
    root = tmp_path_factory.mktemp("streaming")
    return {s: write_video(root / f"n{s}", numbered(60), fps=12) for s in (".mp4", ".avi", ".mkv", ".webm", ".mov")}


# --- read_frames_at ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".webm", ".mov"])
def test_read_frames_at_picks_exact_frames_with_seeks(videos, suffix):
    indices = [55, 2, 40, 41, 2, 0, 59]  # any order, repeats; 2 -> 40 -> 55 jumps past the seek gap
    got = read_frames_at(videos[suffix], indices)
    assert levels_of(got) == indices
    np.testing.assert_array_equal(got[2], read_frames(videos[suffix])[40])  # bit for bit the sequential frame


def test_read_frames_at_shrinks_and_transforms_each_frame(videos):
    got = read_frames_at(videos[".mp4"], [10, 50], short_side=12)
    assert got.shape == (2, 12, 16, 3) and levels_of(got) == [10, 50]
    cropped = read_frames_at(videos[".mp4"], [10], transform=lambda rgb: rgb[:8, :8])
    assert cropped.shape == (1, 8, 8, 3)


def test_read_frames_at_pads_past_the_end_with_the_last_frame(videos):
    assert levels_of(read_frames_at(videos[".mkv"], [58, 61])) == [58, 59]
    with pytest.raises(ValueError):
        read_frames_at(videos[".mp4"], [])


def test_variable_frame_rate_takes_the_frame_on_screen(tmp_path):
    """Frames at ticks 0, 1, 2, 5, 6 (a dropped stretch, as phones do): tick 3 and 4 show frame 2."""
    import av

    path = tmp_path / "vfr.mkv"
    ticks = [0, 1, 2, 5, 6, 7, 8, 9]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for number, tick in enumerate(ticks):
            pixels = np.full((16, 16, 3), 20 * number, np.uint8)  # far apart: mpeg4 at 16 px is coarse
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = tick, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    got = read_frames_at(path, [1, 3, 4, 5, 9])
    assert [round(v / 20) for v in got.reshape(5, -1).mean(axis=1)] == [1, 2, 2, 3, 7]


def test_phone_rotation_is_applied(tmp_path):
    """A portrait phone video is landscape pixels plus a display rotation; clips must come out upright."""
    import av

    landscape = np.zeros((32, 64, 3), np.uint8)
    landscape[:, :32] = 255  # left half white
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counterclockwise, as the display matrix says
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(landscape, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    upright = read_frames_at(path, [1])[0]
    assert upright.shape == (64, 32, 3)  # portrait
    assert upright[40:].mean() > 200 and upright[:24].mean() < 50  # the left edge turned to the bottom


def test_probe_without_counting_estimates_from_duration(videos):
    for suffix, path in videos.items():
        info = probe(path, count=False)
        assert abs(info.frames - 60) <= 1, suffix
        assert info.exact == (suffix not in (".mkv", ".webm"))  # these keep no frame count


# --- damaged files: one line naming the file and the frame ------------------------------------

def _cut(path: Path, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def _damaged(path: Path, out: Path) -> Path:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("suffix, make, why", [
    (".avi", _cut, r"decoding stopped at frame \d+ of ~60 \(the file looks cut short"),
    (".mkv", _cut, r"decoding stopped at frame \d+ of ~60"),
    (".mp4", _damaged, r"decoding failed at frame \d+ of ~60"),
])
def test_a_broken_file_names_itself_and_the_frame(tmp_path, suffix, make, why):
    path = make(write_video(tmp_path / f"ok{suffix}", np.random.default_rng(1).integers(
        0, 256, (60, 32, 32, 3), dtype=np.uint8), fps=12), tmp_path / f"broken{suffix}")
    with pytest.raises(DataError, match=why) as caught:
        load_clips(path, CLIP, Windows(per_video=4))
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message and "re-encode" in message


# --- windows ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, per_video, expected", [
    (900, 4, [109, 334, 559, 784]),  # four equal parts, a 7-frame window centred in each
    (30, 4, [0, 7, 15, 22]),  # exactly four fit
    (20, 4, [1, 11]),  # only two fit without overlapping
    (10, 4, [1]),  # one, centred as load_clip's window: (10 - 7) // 2
    (5, 4, [0]),  # too short: one window from the start, padded
    (30, 0, [0, 7, 15, 22]),  # 0 = as many as fit
])
def test_uniform_windows_never_overlap(n, per_video, expected):
    starts = window_starts(n, 30.0, CLIP, Windows(per_video=per_video))
    assert starts.tolist() == expected
    assert np.all(np.diff(starts) >= clip_span(30.0, CLIP)) and starts[-1] + clip_span(30.0, CLIP) <= max(n, 7)


def test_sliding_windows_step_by_the_stride_and_cap_evenly():
    sliding = Windows(WindowMode.SLIDING, per_video=0, stride=3)
    assert window_starts(20, 30.0, CLIP, sliding).tolist() == [0, 3, 6, 9, 12]
    back_to_back = Windows("sliding", per_video=0)
    assert window_starts(30, 30.0, CLIP, back_to_back).tolist() == [0, 7, 14, 21]
    capped = Windows("sliding", per_video=3, stride=1)
    assert window_starts(30, 30.0, CLIP, capped).tolist() == [0, 12, 23]  # first, middle, last of 24


def test_windows_reject_bad_settings():
    with pytest.raises(UsageError, match="uniform, sliding"):
        Windows("random")
    with pytest.raises(UsageError):
        Windows(per_video=-1)


def test_load_clips_cuts_several_clips_from_the_right_frames(videos):
    clips = load_clips(videos[".mp4"], CLIP, Windows(per_video=3))
    assert clips.shape == (3, *CLIP.shape) and clips.dtype == np.uint8
    starts = window_starts(60, 12.0, CLIP, Windows(per_video=3))
    assert [levels_of(c) for c in clips] == [[s, s + 2, s + 4, s + 6] for s in starts.tolist()]
    np.testing.assert_array_equal(load_clips(videos[".mp4"], CLIP)[0], load_clip(videos[".mp4"], CLIP))


# --- memory: bounded by the clips, not the video --------------------------------------------------

def _traced_peak(fn, *args) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_decoding_memory_does_not_grow_with_video_length(tmp_path):
    """A 16x longer video must not cost more memory: only the clip frames are ever kept.
    (Decoding the whole video, as read_video does, holds 480 x 36 KB = 18 MB here.)"""
    frames = np.broadcast_to(np.linspace(0, 255, 128, dtype=np.uint8)[None, None, :, None], (30, 96, 128, 3))
    short = write_video(tmp_path / "short.mp4", frames, fps=30)
    long = write_video(tmp_path / "long.mp4", np.concatenate([frames] * 16), fps=30)
    spec = ClipSpec(frames=4, size=16, stride=2)
    whole_video = 480 * 96 * 128 * 3
    for load in (lambda p: load_clip(p, spec), lambda p: load_clips(p, spec, Windows(per_video=4))):
        peak_short, peak_long = _traced_peak(load, short), _traced_peak(load, long)
        assert peak_long < 2 * peak_short + 500_000, (peak_short, peak_long)
        assert peak_long < whole_video / 8, (peak_long, whole_video)


# --- folder datasets: several clips per video, split by video, counts, errors ---------------------

def _folder(root: Path, videos_per_class: dict[str, int], n_frames: int = 40) -> Path:
    for name, count in videos_per_class.items():
        for i in range(count):
            write_video(root / name / f"{name}_{i}.mp4", numbered(n_frames, 16, 16), fps=12)
    return root


def test_several_clips_per_video_and_no_video_in_both_splits(tmp_path):
    root = _folder(tmp_path / "videos", {"a": 5, "b": 4, "c": 2})
    lines = []
    ds = load_dataset(root, CLIP, val_fraction=0.2, seed=3, progress=False, windows=Windows(per_video=4),
                      report=lines.append)
    assert lines == []
    assert len(ds.train) + len(ds.val) == 11 * 4  # 40 frames fit four 7-frame windows
    assert Counter(Counter(ds.train.files).values()) == {4: len(set(ds.train.files))}
    assert not set(ds.train.files) & set(ds.val.files)  # split by video, then cut clips
    counts = {c.name: c for c in ds.counts()}
    assert (counts["a"].train_videos, counts["a"].val_videos, counts["a"].val_clips) == (4, 1, 4)
    assert counts["c"].val_videos == 1  # a class of two still gets a validation video
    again = load_dataset(root, CLIP, val_fraction=0.2, seed=3, progress=False, windows=Windows(per_video=4))
    assert again.val.files == ds.val.files  # seeded: the same videos every run
    np.testing.assert_array_equal(again.train.x, ds.train.x)


def test_a_class_of_broken_files_is_an_error(tmp_path):
    root = _folder(tmp_path / "videos", {"a": 2})
    (root / "b").mkdir()
    (root / "b" / "x.mp4").write_bytes(b"not a video at all" * 50)
    with pytest.raises(DataError, match=r"class 'b' .*has no readable video"):
        load_dataset(root, CLIP, progress=False, report=lambda line: None)


def test_an_empty_validation_split_is_an_error_and_a_lone_video_a_warning(tmp_path):
    root = _folder(tmp_path / "videos", {"a": 1, "b": 1})
    with pytest.raises(DataError, match="validation split .* is empty"):
        load_dataset(root, CLIP, progress=False, report=lambda line: None)
    assert len(load_dataset(root, CLIP, val_fraction=0.0, progress=False).train) == 2  # asked for no val
    _folder(root, {"a": 2})
    lines = []
    ds = load_dataset(root, CLIP, progress=False, report=lines.append)
    assert len(lines) == 1 and "class b has a single readable video" in lines[0]
    assert {c.name: c.val_clips for c in ds.counts()} == {"a": 1, "b": 0}


# --- the `data` command: table, manifest, one line per broken file, exit codes ----------------------

def _invoke(*args):
    from tfkit.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_data_command_prints_counts_and_names_a_broken_file_once(tmp_path):
    root = _folder(tmp_path / "videos", {"jump": 3, "wave": 3})
    (root / "wave" / "zz_cut.avi").write_bytes(
        write_video(tmp_path / "full.avi", numbered(60, 16, 16), fps=12).read_bytes()[:2500])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warning may escape
        result = _invoke("data", "--source", root, "--frames", 4, "--size", 16, "--clips-per-video", 2,
                         "--val-fraction", 0.34, "--out", tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "zz_cut.avi" in line] == [
        line for line in result.stderr.splitlines() if line.startswith("[data] skipped:")]
    assert sum("zz_cut.avi" in line for line in result.stderr.splitlines()) == 1
    assert "[data] jump" in result.stderr and "[data] total" in result.stderr
    metrics = json.loads((tmp_path / "d" / "manifest.json").read_text())["history"][-1]["metrics"]
    assert metrics["per_class"]["jump"] == {"train_clips": 4, "train_videos": 2, "val_clips": 2, "val_videos": 1}
    assert (metrics["train_clips"], metrics["val_clips"], metrics["val_videos"]) == (8, 4, 2)


def test_data_command_fails_on_an_empty_validation_split(tmp_path):
    root = _folder(tmp_path / "videos", {"jump": 1, "wave": 1})
    result = _invoke("data", "--source", root, "--frames", 4, "--size", 16, "--out", tmp_path / "d")
    assert result.exit_code == 2 and "validation split" in result.stderr
