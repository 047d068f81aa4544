"""tfkit.data.synthetic: the generated motion dataset is real video, deterministic, and its classes
differ in the way they say they do (checked on the decoded files, not on the generator's numbers)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import content_shift
from tfkit.data.folder import scan
from tfkit.data.synthetic import MOTION_CLASSES, generate_motion_dataset, motion_video
from tfkit.data.video import probe, read_frames
from tfkit.errors import InputPathError, UnknownNameError, UsageError

PARAMS = {"videos_per_class": 3, "frames": 12, "size": 48, "fps": 10, "seed": 5}


@pytest.fixture(scope="module")
def motion_root(tmp_path_factory):
    return generate_motion_dataset(tmp_path_factory.mktemp("syn") / "motion", progress=False, **PARAMS)


def grey(root, name, index):
    return read_frames(root / name / f"{name}_{index:03d}.mp4").astype(np.float64).mean(axis=-1)


def median_shift(frames: np.ndarray, gap: int = 2) -> np.ndarray:
    return np.median([content_shift(frames[t], frames[t + gap]) for t in range(len(frames) - gap)], 0)


def test_layout_and_manifest(motion_root):
    assert sorted(p.name for p in motion_root.iterdir()) == sorted([*MOTION_CLASSES, "dataset.json"])
    items = scan(motion_root)
    assert len(items) == 7 * 3
    assert items[0][0].name == "down_000.mp4"
    manifest = json.loads((motion_root / "dataset.json").read_text())
    assert manifest["classes"] == list(MOTION_CLASSES)
    assert {k: manifest[k] for k in PARAMS} == PARAMS
    info = probe(motion_root / "left" / "left_000.mp4")
    assert (info.frames, info.width, info.height, info.fps) == (12, 48, 48, 10.0)


@pytest.mark.parametrize(
    "name, sign_x, sign_y",
    [("left", -1, 0), ("right", 1, 0), ("up", 0, -1), ("down", 0, 1)],
)
def test_translations_move_the_named_way(motion_root, name, sign_x, sign_y):
    for index in range(PARAMS["videos_per_class"]):
        dx, dy = median_shift(grey(motion_root, name, index))  # 2 frames at 1.5-4 px a frame
        along, across = (dx * sign_x, abs(dy)) if sign_x else (dy * sign_y, abs(dx))
        assert 2 <= along <= 9 and across <= 2 and along > 2 * across, f"{name}_{index:03d}: shift ({dx}, {dy})"


@pytest.mark.parametrize("name", ["static", "rotate", "zoom"])
def test_untranslated_classes_have_no_net_shift(motion_root, name):
    for index in range(PARAMS["videos_per_class"]):
        dx, dy = median_shift(grey(motion_root, name, index))
        assert abs(dx) <= 1 and abs(dy) <= 1, f"{name}_{index:03d}: shift ({dx}, {dy})"


def _change(frames: np.ndarray, block: int = 4) -> float:
    """Mean |last - first| after block-averaging away the per-frame noise."""
    n, h, w = frames.shape
    pooled = frames.reshape(n, h // block, block, w // block, block).mean(axis=(2, 4))
    return float(np.abs(pooled[-1] - pooled[0]).mean())


def test_static_is_still_and_every_other_class_moves(motion_root):
    change = {
        name: [_change(grey(motion_root, name, i)) for i in range(PARAMS["videos_per_class"])]
        for name in MOTION_CLASSES
    }
    still = max(change["static"])
    assert still < 2.5
    for name in MOTION_CLASSES:
        if name != "static":
            assert min(change[name]) > 2 * still, f"{name}: {change[name]} vs static {still}"


def test_frames_are_noisy_so_differences_are_not_zero(motion_root):
    frames = grey(motion_root, "static", 0)
    assert np.abs(np.diff(frames, axis=0)).mean() > 1.0


def test_same_seed_gives_identical_files(motion_root, tmp_path):
    again = generate_motion_dataset(tmp_path / "again", progress=False, **PARAMS)
    for name in MOTION_CLASSES:
        pairs = zip(sorted((motion_root / name).iterdir()), sorted((again / name).iterdir()), strict=True)
        for first, second in pairs:
            assert first.name == second.name and first.read_bytes() == second.read_bytes()


def test_other_seed_gives_other_videos(motion_root, tmp_path):
    other_params = {**PARAMS, "seed": 6, "videos_per_class": 1}
    other = generate_motion_dataset(tmp_path / "other", progress=False, **other_params)
    first_video = "left/left_000.mp4"
    assert (other / first_video).read_bytes() != (motion_root / first_video).read_bytes()


def test_motion_video_is_deterministic_and_uint8():
    first = motion_video("rotate", np.random.default_rng(1), frames=5, size=32)
    second = motion_video("rotate", np.random.default_rng(1), frames=5, size=32)
    assert first.dtype == np.uint8 and first.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    assert 60 < first.mean() < 200 and first.std() > 15  # textured, not flat or clipped
    with pytest.raises(UnknownNameError, match="'left'"):
        motion_video("lefty", np.random.default_rng(1), frames=2, size=16)


def test_regenerating_same_params_is_a_no_op(motion_root):
    stamp = (motion_root / "up" / "up_000.mp4").stat().st_mtime_ns
    assert generate_motion_dataset(motion_root, progress=False, **PARAMS) == motion_root
    assert (motion_root / "up" / "up_000.mp4").stat().st_mtime_ns == stamp


def test_foreign_folder_needs_overwrite(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    small = {"videos_per_class": 1, "frames": 2, "size": 16}
    with pytest.raises(UsageError, match="overwrite=True"):
        generate_motion_dataset(tmp_path, progress=False, **small)
    generate_motion_dataset(tmp_path, progress=False, overwrite=True, **small)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert len(scan(tmp_path)) == 7


def test_bad_parameters(tmp_path):
    with pytest.raises(UsageError):
        generate_motion_dataset(tmp_path / "a", size=33, progress=False)
    with pytest.raises(UsageError):
        generate_motion_dataset(tmp_path / "b", videos_per_class=0, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputPathError):
        generate_motion_dataset(tmp_path / "file", videos_per_class=1, frames=2, size=16, progress=False)


def test_interrupted_generation_is_redone_without_overwrite(tmp_path):
    small = {"videos_per_class": 2, "frames": 2, "size": 16}
    root = generate_motion_dataset(tmp_path / "m", progress=False, **small)
    (root / "dataset.json").unlink()  # as if the run died before the end
    (root / "left" / "left_001.mp4").unlink()
    (root / "left" / "left_007.mp4").write_bytes(b"stale video from a bigger earlier run")
    generate_motion_dataset(root, progress=False, **small)
    assert sorted(p.name for p in (root / "left").iterdir()) == ["left_000.mp4", "left_001.mp4"]
    assert (root / "dataset.json").is_file()


def test_user_videos_in_a_class_folder_are_never_removed(tmp_path):
    (tmp_path / "left").mkdir()
    (tmp_path / "left" / "holiday.mp4").write_bytes(b"precious")
    with pytest.raises(UsageError):
        generate_motion_dataset(tmp_path, videos_per_class=1, frames=2, size=16, progress=False)
    assert (tmp_path / "left" / "holiday.mp4").read_bytes() == b"precious"
