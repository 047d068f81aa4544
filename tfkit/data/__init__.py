"""Real video in, clips out: streaming decode (PyAV), clip windows, folder datasets, the motion set.

Imports numpy and PyAV only; no TensorFlow.

Example:
    >>> from tfkit.data import generate_motion_dataset, load_dataset
    >>> from tfkit.types import ClipSpec
    >>> root = generate_motion_dataset("motion/", videos_per_class=10, progress=False)
    >>> load_dataset(root, ClipSpec(frames=8, size=64), progress=False).train.x.shape
    (56, 8, 64, 64, 3)
"""
from tfkit.data.clips import (
    WindowMode,
    Windows,
    clip_span,
    load_clip,
    load_clips,
    normalize,
    resize_crop,
    sample_indices,
    window_starts,
)
from tfkit.data.decode import read_frames_at
from tfkit.data.folder import (
    VIDEO_SUFFIXES,
    ClassCount,
    ClipSet,
    Split,
    VideoDataset,
    counts_table,
    load_dataset,
    scan,
    split,
)
from tfkit.data.synthetic import MOTION_CLASSES, MOTION_SYMMETRIES, generate_motion_dataset, motion_video
from tfkit.data.video import (
    Video,
    VideoInfo,
    encoder_for,
    probe,
    read_frames,
    read_video,
    write_video,
)

__all__ = [
    "MOTION_CLASSES",
    "MOTION_SYMMETRIES",
    "VIDEO_SUFFIXES",
    "ClassCount",
    "ClipSet",
    "Split",
    "Video",
    "VideoDataset",
    "VideoInfo",
    "WindowMode",
    "Windows",
    "clip_span",
    "counts_table",
    "encoder_for",
    "generate_motion_dataset",
    "load_clip",
    "load_clips",
    "load_dataset",
    "motion_video",
    "normalize",
    "probe",
    "read_frames",
    "read_frames_at",
    "read_video",
    "resize_crop",
    "sample_indices",
    "scan",
    "split",
    "window_starts",
    "write_video",
]
