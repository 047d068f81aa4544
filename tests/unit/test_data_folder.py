"""tfkit.data.folder: scanning root/<class>/<video>, stratified splits, loading, npz round trips."""
from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tfkit.data.folder import VIDEO_SUFFIXES, ClipSet, load_dataset, scan, split
from tfkit.data.synthetic import MOTION_CLASSES, generate_motion_dataset
from tfkit.errors import DataError, InputPathError, UsageError
from tfkit.types import ClipSpec

CLIP = ClipSpec(frames=4, size=24, stride=2)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """7 classes x 3 generated videos (8 frames, 32 px), plus one random-bytes .mp4 in `left`."""
    root = tmp_path_factory.mktemp("tiny") / "motion"
    generate_motion_dataset(root, videos_per_class=3, frames=8, size=32, progress=False)
    bad = root / "left" / "zz_broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (root / "left" / "notes.txt").write_text("not a video, not scanned")
    (root / "left" / ".hidden.mp4").write_bytes(b"half-written temp file")
    (root / "no_videos_here").mkdir()
    return root


@pytest.fixture(scope="module")
def reported(tiny_root):
    """(dataset, the lines load_dataset reported) for tiny_root."""
    lines = []
    ds = load_dataset(tiny_root, CLIP, val_fraction=0.34, seed=0, progress=False, report=lines.append)
    return ds, lines


@pytest.fixture(scope="module")
def tiny_dataset(reported):
    return reported[0]


def test_a_broken_file_is_named_once_and_no_python_warning(tiny_root, reported, recwarn):
    lines = reported[1]
    assert len(lines) == 1 and "zz_broken.mp4" in lines[0] and "not a decodable video" in lines[0]
    load_dataset(tiny_root, CLIP, val_fraction=0.34, seed=0, progress=False, report=lambda line: None)
    assert not [w for w in recwarn if "zz_broken" in str(w.message)]


def test_scan_lists_videos_by_class(tiny_root):
    items = scan(tiny_root)
    assert items == sorted(items)
    assert sorted({name for _, name in items}) == sorted(MOTION_CLASSES)  # empty folder is no class
    counts = Counter(name for _, name in items)
    assert counts["left"] == 4 and all(counts[c] == 3 for c in MOTION_CLASSES if c != "left")
    assert all(path.suffix in VIDEO_SUFFIXES and path.parent.name == name for path, name in items)
    assert not any(path.name.startswith(".") for path, _ in items)


def test_scan_errors(tmp_path):
    with pytest.raises(InputPathError, match="does not exist"):
        scan(tmp_path / "missing")
    (tmp_path / "file.mp4").write_bytes(b"x")
    with pytest.raises(InputPathError):
        scan(tmp_path / "file.mp4")
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "cats" / "readme.txt").write_text("no videos")
    with pytest.raises(DataError, match=r"empty dataset folder .*root/<class>/<video>\.mp4"):
        scan(empty)


def _items(counts: dict[str, int]) -> list[tuple[Path, str]]:
    return [(Path(f"/data/{name}/{i:02d}.mp4"), name) for name, n in counts.items() for i in range(n)]


def test_split_is_stratified_and_keeps_a_train_item_per_class():
    items = _items({"a": 10, "b": 5, "c": 3, "d": 1})
    halves = split(items, val_fraction=0.2, seed=0)
    val = Counter(name for _, name in halves.val)
    train = Counter(name for _, name in halves.train)
    assert val == {"a": 2, "b": 1, "c": 1}  # round(n * 0.2), but never the last one
    assert train == {"a": 8, "b": 4, "c": 2, "d": 1}
    assert set(halves.train) | set(halves.val) == set(items)
    assert not set(halves.train) & set(halves.val)
    assert list(halves.train) == sorted(halves.train) and list(halves.val) == sorted(halves.val)


def test_split_is_deterministic_for_a_seed():
    items = _items({"a": 20, "b": 20})
    assert split(items, 0.25, seed=7) == split(list(reversed(items)), 0.25, seed=7)
    picks = {split(items, 0.25, seed=seed).val for seed in range(5)}
    assert len(picks) > 1  # the seed matters


def test_split_edges():
    items = _items({"a": 4})
    assert split(items, val_fraction=0.0).val == ()
    assert len(split(items, val_fraction=0.99).train) == 1
    with pytest.raises(UsageError):
        split(items, val_fraction=1.0)
    with pytest.raises(UsageError):
        split(items, val_fraction=-0.1)


def test_load_dataset_uses_readable_files_and_names_the_broken_one(tiny_root, tiny_dataset):
    ds = tiny_dataset
    assert ds.classes == tuple(sorted(MOTION_CLASSES))
    assert [Path(p).name for p, _ in ds.skipped] == ["zz_broken.mp4"]
    assert "not a decodable video" in ds.skipped[0][1]
    assert len(ds.train) + len(ds.val) == 21
    assert len(ds.val) == 7  # one of each class: round(3 * 0.34)
    for part in (ds.train, ds.val):
        assert part.x.dtype == np.uint8 and part.x.shape[1:] == CLIP.shape
        assert part.y.dtype == np.int64
        assert [Path(f).parent.name for f in part.files] == [ds.classes[i] for i in part.y]
        assert part.classes == ds.classes and part.clip == CLIP
    assert not set(ds.train.files) & set(ds.val.files)


def test_load_dataset_clips_match_load_clip(tiny_dataset, tiny_root):
    from tfkit.data.clips import load_clip

    first = tiny_dataset.train.files[0]
    assert not Path(first).is_absolute()  # relative to the dataset root: the same bytes wherever it lies
    np.testing.assert_array_equal(tiny_dataset.train.x[0], load_clip(Path(tiny_root) / first, CLIP))


def test_load_dataset_with_progress_bar_outside_a_terminal(tiny_root, capsys):
    ds = load_dataset(tiny_root, CLIP, val_fraction=0.0, progress=True, report=lambda line: None)
    assert len(ds.val) == 0 and ds.val.x.shape == (0, *CLIP.shape) and len(ds.train) == 21


def test_all_unreadable_is_a_data_error(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.mp4").write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match=r"no readable video .*cats/a\.mp4"):
        load_dataset(tmp_path, CLIP, progress=False)


def test_missing_root_is_an_input_path_error(tmp_path):
    with pytest.raises(InputPathError):
        load_dataset(tmp_path / "nowhere", CLIP, progress=False)


def test_clipset_npz_round_trip(tmp_path, tiny_dataset):
    original = tiny_dataset.val
    path = original.save_npz(tmp_path / "out" / "val.npz")
    assert sorted(os.listdir(path.parent)) == ["val.npz"]
    with np.load(path, allow_pickle=False) as raw:  # what a bare benchmark runner sees
        assert raw["x"].dtype == np.uint8 and raw["y"].dtype == np.int64
        assert list(raw["classes"]) == list(tiny_dataset.classes)
    loaded = ClipSet.load_npz(path)
    np.testing.assert_array_equal(loaded.x, original.x)
    np.testing.assert_array_equal(loaded.y, original.y)
    assert (loaded.files, loaded.classes, loaded.clip) == (original.files, original.classes, CLIP)


def test_clipset_npz_errors(tmp_path):
    with pytest.raises(InputPathError):
        ClipSet.load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError):
        ClipSet.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((1, 2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError):
        ClipSet.load_npz(tmp_path / "nolabels.npz")


def test_clipset_checks_its_arrays():
    with pytest.raises(DataError):
        ClipSet(np.zeros((2, 4, 8, 8, 3), np.float32), np.zeros(2, np.int64), ("a", "b"))
    with pytest.raises(DataError):
        ClipSet(np.zeros((2, 4, 8, 8, 3), np.uint8), np.zeros(3, np.int64), ("a", "b"))


def test_copied_dataset_is_scanned_the_same(tiny_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_root, copy)
    assert [(p.relative_to(copy), c) for p, c in scan(copy)] == [
        (p.relative_to(tiny_root), c) for p, c in scan(tiny_root)
    ]
